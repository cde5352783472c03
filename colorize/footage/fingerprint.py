"""What a checkpoint must match before a run may continue from it.

A fingerprint is a JSON tree of three parts: the input, the references and the knobs (every
setting that changes the output). Resuming compares the saved tree with a fresh one and names
what differs, e.g. ``input: size 1,204,331 -> 1,198,002 bytes``.

Files are identified by their size and a SHA-256 over sampled blocks (the whole file when it is
at most :data:`FULL_HASH_LIMIT` bytes). Hashing a whole 50 GB film reads it at disk speed, a
minute or more, at every start and every resume; 16 blocks of 64 KiB spread from the first to
the last byte cost a few milliseconds and still catch what happens in practice: another file,
a re-encode or re-export (its container header, index and sample data move), a truncated or
extended copy (size). Modification times are recorded but not compared: copying a film and its
checkpoint to another disk changes them without changing a single frame.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

from colorize.video import images

BLOCK_BYTES = 64 * 1024
SAMPLED_BLOCKS = 16
FULL_HASH_LIMIT = BLOCK_BYTES * SAMPLED_BLOCKS

JSON = Any


def file_fingerprint(path: Path) -> dict[str, JSON]:
    """Size and a (sampled) SHA-256 of one file's bytes."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if stat.st_size <= FULL_HASH_LIMIT:
            digest.update(handle.read())
            method = "sha256"
        else:
            last = stat.st_size - BLOCK_BYTES
            for block in range(SAMPLED_BLOCKS):
                handle.seek(last * block // (SAMPLED_BLOCKS - 1))
                digest.update(handle.read(BLOCK_BYTES))
            method = f"sha256 of {SAMPLED_BLOCKS} x {BLOCK_BYTES // 1024} KiB blocks"
    return {
        "name": path.name,
        "size": stat.st_size,
        "hash": digest.hexdigest(),
        "hash_method": method,
        "mtime_ns": stat.st_mtime_ns,
    }


def folder_fingerprint(folder: Path) -> dict[str, JSON]:
    """The image files of a folder (the frames an image-folder input reads), in order."""
    digest = hashlib.sha256()
    files = images.list_image_files(folder)
    total = 0
    for file in files:
        entry = file_fingerprint(file)
        total += entry["size"]
        digest.update(f"{file.name}\0{entry['size']}\0{entry['hash']}\n".encode())
    return {"name": folder.name, "files": len(files), "size": total, "hash": digest.hexdigest()}


def path_fingerprint(path: Path) -> dict[str, JSON]:
    return folder_fingerprint(path) if path.is_dir() else file_fingerprint(path)


def build_fingerprint(
    input_path: Path, references: Mapping[str, Path], knobs: Mapping[str, JSON]
) -> dict[str, JSON]:
    """The fingerprint of one run. ``references`` maps a label (``main``, ``frame 120``...) to
    an image file; ``knobs`` holds JSON values only."""
    return {
        "input": path_fingerprint(input_path),
        "references": {label: path_fingerprint(path) for label, path in sorted(references.items())},
        "knobs": dict(sorted(knobs.items())),
    }


# Keys that describe a file without deciding whether it is the same one.
_INFORMATIVE = {"name", "mtime_ns", "hash_method"}


def describe_changes(saved: Mapping[str, JSON], current: Mapping[str, JSON]) -> list[str]:
    """Human-readable differences, most telling first; empty when resuming is safe."""
    changes: list[str] = []
    changes += _describe_file("input", saved.get("input"), current.get("input"))
    old_refs, new_refs = saved.get("references", {}), current.get("references", {})
    for label in sorted(set(old_refs) | set(new_refs)):
        changes += _describe_file(f"reference {label}", old_refs.get(label), new_refs.get(label))
    old_knobs, new_knobs = saved.get("knobs", {}), current.get("knobs", {})
    for name in sorted(set(old_knobs) | set(new_knobs)):
        old, new = old_knobs.get(name, "<unset>"), new_knobs.get(name, "<unset>")
        if isinstance(old, dict) and isinstance(new, dict) and "hash" in old:
            changes += _describe_file(_option_name(name), old, new)
        elif old != new:
            changes.append(f"{_option_name(name)} {_short(old)} -> {_short(new)}")
    return changes


def _describe_file(label: str, old: JSON, new: JSON) -> list[str]:
    if old == new:
        return []
    if old is None or new is None:
        return [f"{label} {'added' if old is None else 'removed'}"]
    relevant = [key for key in set(old) | set(new) if key not in _INFORMATIVE]
    if all(old.get(key) == new.get(key) for key in relevant):
        return []
    if old.get("size") != new.get("size"):
        return [f"{label} is another file ({old.get('name')}: {old.get('size'):,} bytes, "
                f"now {new.get('name')}: {new.get('size'):,} bytes)"]
    if old.get("files") != new.get("files"):
        return [f"{label} has {new.get('files')} images, the checkpoint was made with "
                f"{old.get('files')}"]
    return [f"{label} content changed ({old.get('name')} -> {new.get('name')}, same size)"]


def _option_name(knob: str) -> str:
    return knob if " " in knob or knob.startswith("-") else "--" + knob.replace("_", "-")


def _short(value: JSON) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
