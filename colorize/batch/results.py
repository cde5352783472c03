"""``OUTDIR/batch.jsonl``: one line per finished, failed or skipped video, and the skip rule.

Only the driver writes this file (never a worker), one whole line at a time, flushed and
synced, so a video finished once is recorded once even when workers die and tasks are retried.
A rerun skips a video when its latest ``ok``/``skipped`` line has the same fingerprint (input,
references, options, weights) and the output on disk still has the recorded sha256; everything
else is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

RESULTS_NAME = "batch.jsonl"
Status = Literal["ok", "failed", "skipped"]


@dataclass
class ResultRecord:
    input: str
    status: Status
    output: str
    sha256: str | None = None
    frames: int | None = None
    seconds: float | None = None
    device: str | None = None
    error: str | None = None
    exit_code: int | None = None
    fingerprint: str | None = None
    shots: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        return json.dumps(data, sort_keys=False)


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class ResultsFile:
    """Reads the previous lines once and appends new ones."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / RESULTS_NAME
        self.previous: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return latest
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                latest[str(record["input"])] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                # A line cut by a crash: that video is simply redone.
                logger.warning("%s:%d: unreadable line ignored", self.path, number)
        return latest

    def completed(self, input_key: str, output: Path, fingerprint: str) -> dict[str, Any] | None:
        """The previous record if this video is done and its output intact, else None."""
        record = self.previous.get(input_key)
        if not record or record.get("status") not in ("ok", "skipped"):
            return None
        if record.get("fingerprint") != fingerprint or record.get("output") != str(output):
            return None
        if not output.is_file() or record.get("sha256") != sha256_of(output):
            return None
        return record

    def append(self, record: ResultRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = record.to_json() + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
