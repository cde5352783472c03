"""The checkpoint folder beside the output: layout, atomic writes, loading and checking.

``<output>.colorize-resume/`` holds

* ``checkpoint.json``: the commit record (format version, fingerprint, position, engine meta,
  the state file's name and SHA-256, the output-specific part list). It is replaced last, by
  rename, so it always names files that are complete on disk;
* ``state-<frame>.safetensors``: the engine's tensors after frame ``<frame>`` (no pickle);
* ``frames/``: the finished part of the output (see :mod:`colorize.footage.parts`);
* ``report.jsonl`` (with ``--report``): one line per finished frame's record, only appended to
  (and fsynced) before the record that counts its lines; lines past that count, from a save
  cut short, are dropped on resume.

Every other file is written to a temporary name, flushed with ``fsync`` and renamed, and the folder is
synced after the rename, so a ``kill -9`` or a power cut at any instant leaves the previous
checkpoint whole. Files a later checkpoint would have replaced are deleted only after the new
``checkpoint.json`` is in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorize.errors import CheckpointUnusableError
from colorize.files import replace_file, sync_directory

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

FORMAT = "colorize-resume"
FORMAT_VERSION = 1
SUFFIX = ".colorize-resume"
RECORD = "checkpoint.json"
FRAMES = "frames"
# --report's per-frame records, one JSON line each, appended at every save: a record holds only
# their count, so a save costs the same at frame 100 and at frame 100,000.
REPORT_LOG = "report.jsonl"


def checkpoint_dir_for(output: Path) -> Path:
    """``out.mp4`` -> ``out.mp4.colorize-resume``; ``frames/`` -> ``frames.colorize-resume``."""
    output = Path(os.path.normpath(output))
    return output.with_name(output.name + SUFFIX)


@dataclass
class CheckpointRecord:
    """What ``checkpoint.json`` holds."""

    next_frame: int                      # frames 0 .. next_frame-1 are finished and stored
    fingerprint: dict[str, Any]
    engine_meta: dict[str, Any]
    state_file: str | None               # None once every frame is done (nothing to restore)
    state_sha256: str | None
    parts: dict[str, Any] = field(default_factory=dict)
    complete: bool = False               # all frames done; only the final assembly is left
    format: str = FORMAT
    version: int = FORMAT_VERSION
    saved_at: str = ""


class CheckpointFolder:
    """One checkpoint folder: created lazily, written atomically, removed at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def frames(self) -> Path:
        return self.path / FRAMES

    def has_record(self) -> bool:
        return (self.path / RECORD).is_file()

    def create(self) -> None:
        self.frames.mkdir(parents=True, exist_ok=True)

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> CheckpointRecord:
        """The record, checked for shape; raises :class:`CheckpointUnusableError`."""
        where = self.path / RECORD
        try:
            raw = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise self.damaged(f"{RECORD} unreadable ({_first_line(error)})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise self.damaged(f"{RECORD} is not a colorize checkpoint")
        if raw.get("version") != FORMAT_VERSION:
            raise CheckpointUnusableError(
                f"checkpoint {self.path} has format version {raw.get('version')}, this colorize "
                f"reads {FORMAT_VERSION}; delete that folder to start over"
            )
        try:
            record = CheckpointRecord(**raw)
        except TypeError as error:
            raise self.damaged(f"{RECORD} has unexpected fields ({error})") from None
        if not isinstance(record.next_frame, int) or record.next_frame < 0:
            raise self.damaged(f"{RECORD} has no valid position")
        return record

    def load_state(self, record: CheckpointRecord) -> dict[str, "torch.Tensor"]:
        """The engine tensors, after checking their SHA-256 against the record."""
        from safetensors.torch import load

        if record.state_file is None:
            return {}
        path = self.path / record.state_file
        if path.parent != self.path:
            raise self.damaged("the state file name points outside the checkpoint folder")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise self.damaged(f"state file {record.state_file} unreadable "
                                f"({_first_line(error)})") from None
        if hashlib.sha256(data).hexdigest() != record.state_sha256:
            raise self.damaged(f"state file {record.state_file} does not match its checksum")
        try:
            return load(data)
        except Exception as error:  # noqa: BLE001 - any parse failure means damage
            raise self.damaged(f"state file {record.state_file} unreadable "
                                f"({_first_line(error)})") from None

    def damaged(self, what: str) -> CheckpointUnusableError:
        return CheckpointUnusableError(
            f"checkpoint {self.path} is damaged: {what}; delete that folder to start over"
        )

    # -- writing -----------------------------------------------------------------------------

    def save(self, record: CheckpointRecord, tensors: dict[str, "torch.Tensor"] | None) -> float:
        """Write state (if any) then the record; returns the seconds it took."""
        from safetensors.torch import save

        started = time.perf_counter()
        self.create()
        previous = self._current_state_file()
        if tensors is not None:
            data = save({name: tensor.contiguous() for name, tensor in tensors.items()})
            record.state_file = f"state-{record.next_frame:09d}.safetensors"
            record.state_sha256 = hashlib.sha256(data).hexdigest()
            write_atomically(self.path / record.state_file, data, sync_folder=False)
        record.saved_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = json.dumps(asdict(record), indent=1, sort_keys=True)
        write_atomically(self.path / RECORD, text.encode("utf-8"))
        if previous and previous != record.state_file:
            (self.path / previous).unlink(missing_ok=True)
        return time.perf_counter() - started

    def append_report(self, items: list[dict[str, Any]]) -> None:
        """Append report records and flush them to disk (before the record that counts them)."""
        self.create()
        path = self.path / REPORT_LOG
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(item, sort_keys=True) + "\n" for item in items)
            handle.flush()
            os.fsync(handle.fileno())

    def load_report(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` report records; lines after them (a save cut short) are dropped."""
        if count <= 0:
            (self.path / REPORT_LOG).unlink(missing_ok=True)
            return []
        path = self.path / REPORT_LOG
        items: list[dict[str, Any]] = []
        kept_bytes = 0
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    if len(items) == count:
                        break
                    if not line.endswith(b"\n"):
                        break
                    items.append(json.loads(line))
                    kept_bytes += len(line)
        except (OSError, ValueError) as error:
            raise self.damaged(f"{REPORT_LOG} unreadable ({_first_line(error)})") from None
        if len(items) != count:
            raise self.damaged(f"{REPORT_LOG} holds {len(items)} of its {count} records")
        os.truncate(path, kept_bytes)
        return items

    def _current_state_file(self) -> str | None:
        try:
            return json.loads((self.path / RECORD).read_text(encoding="utf-8")).get("state_file")
        except (OSError, ValueError, AttributeError):
            return None

    def remove_stray_states(self, keep: str | None) -> None:
        """State files no record points at (a kill between the state and record writes)."""
        for path in self.path.glob("state-*.safetensors*"):
            if path.name != keep:
                path.unlink(missing_ok=True)
        for path in self.path.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_atomically(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Temp file in the same folder, fsync, rename over ``path``, then fsync the folder."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        replace_file(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sync_folder:
        sync_directory(path.parent)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
