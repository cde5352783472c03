"""Confidence report: per-frame memory-match scores, and where another reference would help.

The pipeline adds one record per frame (:meth:`ConfidenceReport.add`): the frame's memory-match
score in [0, 1] (defined by the engine, see ``colorize.memory``: 1 means every position of the
frame has an exact match in memory), the reference in use and the shot. :meth:`write` saves a
JSON file and, beside it, a plot of the score over time: ``<stem>.png`` when matplotlib is
installed (``colorize-video[plot]``), else a plain-text plot ``<stem>.txt``. Nothing here
imports torch.

Low-confidence spans (:meth:`ConfidenceReport.low_confidence_spans`)
--------------------------------------------------------------------
* A frame is *low* when its score is below ``threshold`` (default 0.5: the score is the
  geometric mean over key channels of the best memory affinity, so 0.5 means the best match is
  on average half as close as an exact one per channel; no real footage was available to
  calibrate it further, which is why every frame's score is in the JSON and the threshold is a
  knob). Frames without a score (``null``) are never low.
* Low frames of one shot separated by at most ``merge_gap`` (5) frames that are not low form
  one span, gap included: a score hovering around the threshold is one problem, and one
  reference fixes it.
* Spans shorter than ``min_span`` (3) frames after merging are dropped: a flash or a blurred
  frame or two recovers on its own and is not worth a keyframe.
* Spans never cross a cut: each shot starts again from its own references.
* Suggested keyframe: the span's first frame when the span starts its shot (the shot's
  references do not fit it; a reference at the shot's first frame applies to all of it);
  otherwise the lowest-scoring frame in the span's first third. A reference applies from its
  frame on, never backwards, so it should come early in the span, and the worst frame there is
  the content the memory lacks.

JSON schema (``version`` 1)
---------------------------
::

    {
      "format": "colorize-confidence-report", "version": 1,
      "input": str | null, "fps": float | null, "score_definition": str | null,
      "frame_count": int,                    # records, one per frame
      "threshold": float, "merge_gap": int, "min_span": int,
      "summary": {"scored_frames": int, "mean": float | null, "median": float | null,
                  "min": float | null, "low_frames": int, "spans": int},
      "shots": [{"index": int, "start": int, "end": int,   # end exclusive
                 "references": [str | null, ...],          # in order of use
                 "mean_score": float | null, "min_score": float | null}],
      "spans": [{"shot": int, "start": int, "end": int,    # end exclusive
                 "frames": int, "min_score": float, "mean_score": float,
                 "keyframe": int, "message": str}],
      "frames": [{"frame": int, "score": float | null, "reference": str | null,
                  "shot": int}, ...]                        # one line per frame

Scores are rounded to 4 decimals when recorded (they come from float32 affinities).
    }

Frames are 0-based in decode order, the numbering ``--ref FRAME=PATH`` uses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from colorize.errors import OutputWriteError
from colorize.files import replace_file

__all__ = ["ConfidenceReport", "FrameRecord", "LowConfidenceSpan", "ReportConfig"]

log = logging.getLogger(__name__)

FORMAT = "colorize-confidence-report"
VERSION = 1


@dataclass(frozen=True)
class ReportConfig:
    """How low-confidence spans are found (reasons in the module docstring)."""

    threshold: float = 0.5
    merge_gap: int = 5
    min_span: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.merge_gap < 0 or self.min_span < 1:
            raise ValueError("merge_gap must be >= 0 and min_span >= 1")


@dataclass(frozen=True)
class FrameRecord:
    frame: int
    score: float | None
    reference: str | None
    shot: int

    def as_json(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "score": self.score,
            "reference": self.reference,
            "shot": self.shot,
        }


@dataclass(frozen=True)
class LowConfidenceSpan:
    """Frames ``start`` to ``end`` (exclusive) of shot ``shot`` scoring low, and a keyframe."""

    shot: int
    start: int
    end: int
    min_score: float
    mean_score: float
    keyframe: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def message(self) -> str:
        last = self.end - 1
        return (
            f"frames {self.start:,}-{last:,} (shot {self.shot}) score as low as "
            f"{self.min_score:.2f}: colour frame {self.keyframe:,} and pass it as "
            f"--ref {self.keyframe}={reference_file_name(self.keyframe)} (or let "
            "'colorize keyframes INPUT -o DIR --report REPORT.json' pick a still for it)"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "shot": self.shot,
            "start": self.start,
            "end": self.end,
            "frames": self.frames,
            "min_score": _round(self.min_score),
            "mean_score": _round(self.mean_score),
            "keyframe": self.keyframe,
            "message": self.message,
        }


def reference_file_name(frame: int) -> str:
    """The ``--ref-dir`` name of a keyframe reference (``ref_000120.png`` = frame 120)."""
    return f"ref_{frame:06d}.png"


@dataclass
class ConfidenceReport:
    """Per-frame records of one run, in frame order."""

    config: ReportConfig = field(default_factory=ReportConfig)
    input: str | None = None
    fps: float | None = None
    score_definition: str | None = None
    _records: list[FrameRecord] = field(default_factory=list, repr=False)

    # -- collecting ----------------------------------------------------------------------------

    def add(
        self, frame: int, score: float | None, reference: str | None = None, shot: int = 0
    ) -> None:
        """Record one frame; frames must come in increasing order (decode order)."""
        if self._records and frame <= self._records[-1].frame:
            raise ValueError(f"frame {frame} recorded after frame {self._records[-1].frame}")
        if score is not None:
            score = float(score)
            if not 0.0 <= score <= 1.0:  # also refuses NaN
                raise ValueError(f"score of frame {frame} must be in [0, 1], got {score}")
            # Kept as written to the JSON, so a report read back finds the same spans.
            score = _round(score)
        self._records.append(FrameRecord(int(frame), score, reference, int(shot)))

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[FrameRecord]:
        return iter(self._records)

    @property
    def records(self) -> list[FrameRecord]:
        return list(self._records)

    # -- analysis ------------------------------------------------------------------------------

    def low_confidence_spans(self, threshold: float | None = None) -> list[LowConfidenceSpan]:
        """Spans of low scores, merged and filtered as the module docstring says."""
        limit = self.config.threshold if threshold is None else threshold
        spans: list[LowConfidenceSpan] = []
        for shot_records in self._by_shot():
            spans.extend(self._spans_in_shot(shot_records, limit))
        return spans

    def _by_shot(self) -> Iterator[list[FrameRecord]]:
        group: list[FrameRecord] = []
        for record in self._records:
            if group and record.shot != group[-1].shot:
                yield group
                group = []
            group.append(record)
        if group:
            yield group

    def _spans_in_shot(self, records: list[FrameRecord], limit: float) -> list[LowConfidenceSpan]:
        low = [i for i, r in enumerate(records) if r.score is not None and r.score < limit]
        runs: list[list[int]] = []  # [first, last] positions in ``records``, merged over gaps
        for i in low:
            if runs and records[i].frame - records[runs[-1][1]].frame - 1 <= self.config.merge_gap:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        spans = []
        for first, last in runs:
            start, end = records[first].frame, records[last].frame + 1
            if end - start < self.config.min_span:
                continue
            inside = records[first : last + 1]
            scored = [r for r in inside if r.score is not None]
            scores = [r.score for r in scored if r.score is not None]
            if first == 0:
                keyframe = start  # the span opens its shot
            else:
                lead = scored[: max(1, math.ceil(len(scored) / 3))]
                keyframe = min(lead, key=lambda r: (r.score, r.frame)).frame
            spans.append(
                LowConfidenceSpan(
                    shot=records[first].shot,
                    start=start,
                    end=end,
                    min_score=min(scores),
                    mean_score=sum(scores) / len(scores),
                    keyframe=keyframe,
                )
            )
        return spans

    def to_json(self) -> dict[str, Any]:
        """The report as the JSON object the module docstring describes."""
        spans = self.low_confidence_spans()
        scores = [r.score for r in self._records if r.score is not None]
        shots = []
        for group in self._by_shot():
            refs: list[str | None] = []
            for record in group:
                if not refs or refs[-1] != record.reference:
                    refs.append(record.reference)
            group_scores = [r.score for r in group if r.score is not None]
            shots.append(
                {
                    "index": group[0].shot,
                    "start": group[0].frame,
                    "end": group[-1].frame + 1,
                    "references": refs,
                    "mean_score": _round(statistics.fmean(group_scores)) if group_scores else None,
                    "min_score": _round(min(group_scores)) if group_scores else None,
                }
            )
        return {
            "format": FORMAT,
            "version": VERSION,
            "input": self.input,
            "fps": self.fps,
            "score_definition": self.score_definition,
            "frame_count": len(self._records),
            "threshold": self.config.threshold,
            "merge_gap": self.config.merge_gap,
            "min_span": self.config.min_span,
            "summary": {
                "scored_frames": len(scores),
                "mean": _round(statistics.fmean(scores)) if scores else None,
                "median": _round(statistics.median(scores)) if scores else None,
                "min": _round(min(scores)) if scores else None,
                "low_frames": sum(1 for s in scores if s < self.config.threshold),
                "spans": len(spans),
            },
            "shots": shots,
            "spans": [span.as_json() for span in spans],
            "frames": [record.as_json() for record in self._records],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ConfidenceReport":
        """Rebuild a report from :meth:`to_json`'s object (e.g. to try another threshold)."""
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} {FORMAT} file")
        report = cls(
            config=ReportConfig(
                threshold=float(data["threshold"]),
                merge_gap=int(data["merge_gap"]),
                min_span=int(data["min_span"]),
            ),
            input=data.get("input"),
            fps=data.get("fps"),
            score_definition=data.get("score_definition"),
        )
        for item in data["frames"]:
            report.add(item["frame"], item["score"], item["reference"], item["shot"])
        return report

    @classmethod
    def read(cls, path: str | Path) -> "ConfidenceReport":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    # -- writing -------------------------------------------------------------------------------

    def write(self, path: str | Path) -> list[Path]:
        """Write the JSON to ``path`` and the plot beside it; return the paths written.

        Each file is written to a temporary name in the same folder and renamed into place, so
        a reader never sees half a report. Raises :class:`OutputWriteError` when it cannot.
        """
        path = Path(path)
        text = self.json_text()
        _atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
        written = [path]
        plot = self._write_png(path.with_name(path.stem + ".png"))
        if plot is None:
            plot = path.with_name(path.stem + ".txt")
            _atomic_write(plot, lambda handle: handle.write(self.text_plot().encode("utf-8")))
        written.append(plot)
        return written

    def json_text(self) -> str:
        """The JSON file's text: :meth:`to_json` with one line per frame."""
        data = self.to_json()
        frames = data.pop("frames")
        head = json.dumps(data, indent=2, ensure_ascii=False)
        # One line per frame keeps a film's report readable and diffable.
        lines = ",\n".join("    " + json.dumps(f, ensure_ascii=False) for f in frames)
        body = head[: head.rindex("}")].rstrip()
        return body + ',\n  "frames": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"

    def _write_png(self, target: Path) -> Path | None:
        figure = self.plot_figure()
        if figure is None:
            return None
        _atomic_write(target, lambda handle: figure.savefig(handle, format="png"))
        return target

    def plot_figure(self) -> Any:
        """The score plot as a matplotlib Figure (Agg canvas), or None without matplotlib."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            log.info("matplotlib is not installed (colorize-video[plot]): writing a text plot")
            return None
        # Figure + Agg canvas directly, not pyplot: no global backend switch in the caller.
        figure = Figure(figsize=(12, 4), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        frames = [r.frame for r in self._records if r.score is not None]
        scores = [r.score for r in self._records if r.score is not None]
        axes.plot(frames, scores, linewidth=0.8, color="tab:blue", label="memory-match score")
        axes.axhline(
            self.config.threshold, color="tab:red", linewidth=0.8, linestyle="--", label="threshold"
        )
        for span in self.low_confidence_spans():
            axes.axvspan(span.start, span.end - 1, color="tab:red", alpha=0.15, linewidth=0)
            axes.axvline(span.keyframe, color="tab:red", linewidth=0.8)
        for group in list(self._by_shot())[1:]:
            axes.axvline(group[0].frame, color="0.5", linewidth=0.6, linestyle=":")
        axes.set_ylim(0, 1.02)
        axes.set_xlabel("frame (dotted: cuts; red: low spans and suggested keyframes)")
        axes.set_ylabel("score")
        axes.set_title(f"Memory-match score{' - ' + Path(self.input).name if self.input else ''}")
        axes.legend(loc="lower left", fontsize="small")
        figure.tight_layout()
        return figure

    def text_plot(self, width: int = 100, height: int = 10) -> str:
        """A plain-text plot: one column per bucket of frames showing its lowest score."""
        records = [r for r in self._records if r.score is not None]
        out = [
            f"Memory-match score per frame (threshold {self.config.threshold:g}; "
            "lowest score per column)"
        ]
        if not records:
            return "\n".join(out + ["(no scored frames)", ""])
        first, last = records[0].frame, records[-1].frame
        columns = min(width, last - first + 1)
        per_column = (last - first + 1) / columns
        lows = [1.0] * columns
        for record in records:
            column = min(columns - 1, int((record.frame - first) / per_column))
            lows[column] = min(lows[column], record.score)  # type: ignore[type-var]
        threshold_row = max(1, round(self.config.threshold * height))
        for row in range(height, 0, -1):
            # A column is filled up to its lowest score, rounded to the nearest row.
            blank = "-" if row == threshold_row else " "
            marks = "".join("#" if round(low * height) >= row else blank for low in lows)
            out.append(f"{row / height:4.1f} |{marks}")
        out.append("     +" + "-" * columns)
        out.append(
            f"      frame {first:,} ... {last:,} ({per_column:.1f} frames per column; "
            "'-' marks the threshold)"
        )
        spans = self.low_confidence_spans()
        out.append("")
        out.append(f"{len(spans)} low-confidence span(s)" + (":" if spans else ""))
        out.extend("  " + span.message for span in spans)
        if spans:
            out.append("")
            out.append(f"The stills to colour for them: {keyframes_command(self.input)}")
        return "\n".join(out) + "\n"


def keyframes_command(input_path: str | None, report_path: str = "REPORT.json") -> str:
    """The command that picks a still for each suggested keyframe (``colorize keyframes``)."""
    source = shlex.quote(input_path) if input_path else "INPUT"
    return f"colorize keyframes {source} -o DIR --shots FILE|auto --report {report_path}"


def _round(value: float) -> float:
    return round(value, 4)


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(handle)`` to a temporary file beside ``path``, then rename it."""
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputWriteError(f"cannot write report {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        replace_file(temp, path)
    except OSError as exc:
        raise OutputWriteError(f"cannot write report {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
