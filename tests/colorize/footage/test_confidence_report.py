"""Confidence report: one record per frame, low spans with keyframes, JSON and plots on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colorize.errors import OutputWriteError
from colorize.footage.report import ConfidenceReport, ReportConfig


def scores_for(frames: int, dips: dict[range, float], base: float = 0.85) -> list[float]:
    """A steady score with a small wobble, and the given ranges pushed down to a level."""
    out = [base + 0.02 * ((f * 7) % 5 - 2) / 2 for f in range(frames)]
    for span, level in dips.items():
        for offset, f in enumerate(span):
            out[f] = level + 0.005 * offset  # slowly recovering, so the lowest frame is the first
    return out


def build(scores: list[float], cuts: tuple[int, ...] = (), **config: float) -> ConfidenceReport:
    report = ConfidenceReport(config=ReportConfig(**config), input="film.mp4", fps=25.0)
    for frame, score in enumerate(scores):
        shot = sum(1 for cut in cuts if cut <= frame)
        report.add(frame, score, reference="ref.png" if frame < 90 else "ref_000090.png", shot=shot)
    return report


def test_one_record_per_frame_in_order() -> None:
    report = build(scores_for(50, {}))
    assert len(report) == 50 and [r.frame for r in report] == list(range(50))
    with pytest.raises(ValueError, match="after frame 49"):
        report.add(49, 0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        report.add(50, 1.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        report.add(50, float("nan"))


def test_spans_merge_small_gaps_drop_blips_and_suggest_early_low_frames() -> None:
    scores = scores_for(200, {range(40, 52): 0.30, range(55, 60): 0.35, range(80, 82): 0.2})
    scores[47] = 0.1  # the worst frame, but past the span's first third
    report = build(scores)
    spans = report.low_confidence_spans()
    # 40-51 and 55-59 are 3 frames apart (<= merge_gap 5): one span; the 2-frame blip at 80 is dropped.
    assert [(s.start, s.end, s.shot) for s in spans] == [(40, 60, 0)]
    span = spans[0]
    assert span.min_score == pytest.approx(0.1)
    assert span.keyframe == 40  # lowest in the first third (40-46), not frame 47
    assert "colour frame 40 and pass it as --ref 40=ref_000040.png" in span.message
    # A wider gap splits the span; a stricter min_span keeps the blip.
    split = build(scores, merge_gap=2).low_confidence_spans()
    assert [(s.start, s.end) for s in split] == [(40, 52), (55, 60)]
    assert [(s.start, s.end) for s in build(scores, min_span=1).low_confidence_spans()] == [(40, 60), (80, 82)]
    # No dip below a lower threshold: nothing to suggest.
    assert report.low_confidence_spans(threshold=0.05) == []


def test_spans_stop_at_cuts_and_a_bad_shot_start_suggests_its_first_frame() -> None:
    # Scores low from 110 to 130 with a cut at 120: two spans; the second opens shot 1.
    scores = scores_for(200, {range(110, 120): 0.3, range(120, 130): 0.2})
    spans = build(scores, cuts=(120,)).low_confidence_spans()
    assert [(s.shot, s.start, s.end, s.keyframe) for s in spans] == [(0, 110, 120, 110), (1, 120, 130, 120)]
    assert "colour frame 120 and pass it as --ref 120=ref_000120.png" in spans[1].message


def test_frames_without_a_score_are_never_low() -> None:
    report = ConfidenceReport()
    for frame in range(10):
        report.add(frame, None if frame < 5 else 0.9)
    assert report.low_confidence_spans() == []
    data = report.to_json()
    assert data["summary"]["scored_frames"] == 5 and data["frames"][0]["score"] is None


def test_json_round_trip_and_schema(tmp_path: Path) -> None:
    scores = scores_for(150, {range(30, 45): 0.3, range(120, 130): 0.25})
    report = build(scores, cuts=(100,))
    path = tmp_path / "film.report.json"
    written = report.write(path)
    assert written[0] == path and written[1].name.startswith("film.report.")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "colorize-confidence-report" and data["version"] == 1
    assert data["frame_count"] == 150 and len(data["frames"]) == 150
    assert [f["frame"] for f in data["frames"]] == list(range(150))
    assert data["frames"][95] == {"frame": 95, "score": report.records[95].score, "reference": "ref_000090.png", "shot": 0}
    assert [(s["index"], s["start"], s["end"]) for s in data["shots"]] == [(0, 0, 100), (1, 100, 150)]
    assert data["shots"][0]["references"] == ["ref.png", "ref_000090.png"]
    assert [(s["start"], s["end"], s["keyframe"]) for s in data["spans"]] == [(30, 45, 30), (120, 130, 120)]
    assert data["summary"]["low_frames"] == 25 and data["summary"]["spans"] == 2
    again = ConfidenceReport.read(path)
    assert again.to_json() == report.to_json()
    # Nothing but the report and its plot: the temporary files were renamed away.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_png_plot_beside_the_json(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib (colorize-video[plot]) not installed")
    report = build(scores_for(120, {range(30, 45): 0.3}), cuts=(60,))
    json_path, plot = report.write(tmp_path / "report.json")
    assert plot == tmp_path / "report.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "report.txt").exists()


def test_text_plot_when_matplotlib_is_missing(tmp_path: Path, hide_package) -> None:
    hide_package("matplotlib")
    report = build(scores_for(300, {range(100, 130): 0.2}))
    json_path, plot = report.write(tmp_path / "report.json")
    assert plot == tmp_path / "report.txt" and not (tmp_path / "report.png").exists()
    text = plot.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if " |" in line]
    assert len(rows) == 10 and all(len(row.split("|", 1)[1]) == 100 for row in rows)
    # The dip shows as short columns around frames 100-129 (columns 33-43 of 100).
    top = rows[0].split("|", 1)[1]
    row_08 = rows[2].split("|", 1)[1]
    assert set(row_08[34:43]) <= {" ", "-"} and row_08[:30] == "#" * 30 and top.strip() == ""
    assert "-" in rows[5]  # threshold 0.5 drawn on its row
    assert "colour frame 100 and pass it as --ref 100=ref_000100.png" in text


def test_write_failure_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    report = build(scores_for(10, {}))
    with pytest.raises(OutputWriteError, match=r"cannot write report .*missing.*report\.json") as info:
        report.write(tmp_path / "missing" / "report.json")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
