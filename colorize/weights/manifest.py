"""sha256 records kept in a JSON manifest beside the checkpoints they describe.

One manifest per folder (``colorize-weights.json``). For every file name it stores the sha256
together with the size and modification time it was computed for, so a hash is only recomputed
when the file changed, and where the file came from (``source``). A record made by a complete
download is the reference later downloads are checked against while no sha256 is pinned in code.

Writing the manifest is best effort: a read-only folder only loses the cache, never a result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colorize.files import replace_file

logger = logging.getLogger(__name__)

MANIFEST_NAME = "colorize-weights.json"
MANIFEST_VERSION = 1
_HASH_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in chunks so a 500 MB checkpoint never sits in memory at once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class FileRecord:
    """What the manifest knows about one file."""

    sha256: str
    size: int
    mtime_ns: int
    source: str = ""  # URL it was downloaded from, "converted:<file>", or "" if only hashed
    recorded_at: str = ""

    def describes(self, path: Path) -> bool:
        """True when the file still has the size and modification time this record was made for."""
        try:
            stat = path.stat()
        except OSError:
            return False
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns

    @property
    def from_download(self) -> bool:
        return self.source.startswith(("http://", "https://", "hf://"))


@dataclass
class Manifest:
    """The records of one folder; load with :meth:`load`, write back with :meth:`save`."""

    folder: Path
    files: dict[str, FileRecord] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """Read the folder's manifest; a missing or unreadable one is treated as empty."""
        manifest = cls(folder=folder)
        try:
            doc = json.loads(manifest.path.read_text(encoding="utf-8"))
            for name, raw in doc.get("files", {}).items():
                manifest.files[name] = FileRecord(**_known_fields(raw))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as error:
            # A damaged cache must not stop the program; it is rebuilt on the next save.
            logger.warning("ignoring unreadable weights manifest %s (%s)", manifest.path, error)
        return manifest

    def save(self) -> bool:
        """Write atomically (temp file + rename). Returns False when the folder is not writable."""
        doc = {
            "version": MANIFEST_VERSION,
            "files": {name: asdict(record) for name, record in sorted(self.files.items())},
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # A plain file name (not mkstemp) so the manifest gets the usual umask permissions.
            tmp = self.folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as handle:
                    json.dump(doc, handle, indent=1)
                    handle.write("\n")
                replace_file(tmp, self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as error:
            logger.debug("could not write weights manifest %s: %s", self.path, error)
            return False
        return True

    def record(self, path: Path, sha256: str, source: str = "") -> FileRecord:
        """Remember the sha256 of ``path`` as it is now (call :meth:`save` to persist)."""
        stat = path.stat()
        entry = FileRecord(
            sha256=sha256,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            source=source,
            recorded_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        self.files[path.name] = entry
        return entry


def cached_sha256(path: Path, *, remember: bool = True) -> str:
    """sha256 of ``path``, taken from its folder's manifest when the file is unchanged.

    With ``remember``, a fresh hash is stored back, keeping the record's ``source`` when the
    content is the same; a record made by a download is never overwritten by a different hash.
    """
    manifest = Manifest.load(path.parent)
    known = manifest.files.get(path.name)
    if known is not None and known.describes(path):
        return known.sha256
    digest = sha256_file(path)
    if not remember:
        return digest
    if known is not None and known.from_download and known.sha256 != digest:
        # Keep the download's record: it is the reference that exposes this changed file.
        return digest
    source = known.source if known is not None and known.sha256 == digest else ""
    manifest.record(path, digest, source=source)
    manifest.save()
    return digest


def _known_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop keys a newer version may have added, so old code still reads the manifest."""
    names = FileRecord.__dataclass_fields__.keys()
    return {key: value for key, value in raw.items() if key in names}
