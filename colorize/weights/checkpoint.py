"""The checkpoint file itself: read it, compare it with the architecture, convert it.

* :func:`load_checkpoint` - a flat ``{name: tensor}`` from ``.safetensors`` (memory-mapped) or
  ``.pth``/``.pt`` (``torch.load(weights_only=True)`` only; no pickled code is ever run).
* :func:`check_state_dict` / :func:`verify_state_dict` - compare keys and shapes with the
  packaged spec of the official checkpoint (``colorize/model/checkpoint_spec.json``).
* :func:`verify_checkpoint_file` - both at once for a file on disk, as a download is checked
  before it is renamed into place.
* :func:`convert_checkpoint` - ``.pth`` to ``.safetensors``, checked, written atomically.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import torch

from colorize.files import replace_file
from colorize.weights.catalog import CHECKPOINT_FILENAME
from colorize.weights.errors import (
    ArchitectureMismatchError,
    CheckpointUnreadableError,
    WeightsPathError,
)

# How many problems an error message spells out before it only counts the rest.
MAX_LISTED_PROBLEMS = 5

# Containers some training scripts wrap the state_dict in; accepted only when the value is
# nothing but tensors.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "network", "net", "weights", "params")


# --------------------------------------------------------------------------- architecture spec


@dataclass(frozen=True)
class CheckpointSpec:
    """Expected tensor names and shapes, in the official checkpoint's order."""

    shapes: dict[str, tuple[int, ...]]

    @classmethod
    def from_entries(cls, entries: list[Mapping[str, Any]]) -> CheckpointSpec:
        return cls({entry["key"]: tuple(int(s) for s in entry["shape"]) for entry in entries})

    @classmethod
    def from_json_text(cls, text: str) -> CheckpointSpec:
        doc = json.loads(text)
        return cls.from_entries(doc["entries"] if isinstance(doc, dict) else doc)


@functools.lru_cache(maxsize=1)
def _packaged_spec() -> CheckpointSpec:
    text = resources.files("colorize").joinpath("model/checkpoint_spec.json").read_text("utf-8")
    return CheckpointSpec.from_json_text(text)


def default_spec() -> CheckpointSpec:
    """The spec of the official checkpoint (667 tensors), read once from package data."""
    return _packaged_spec()


# --------------------------------------------------------------------------- reading


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint into ``{name: tensor}`` on the CPU without running pickled code.

    ``.safetensors`` files are memory-mapped; PyTorch files go through
    ``torch.load(weights_only=True)``. The format is recognised from the file's first bytes,
    so a misnamed file still gets a precise message.
    """
    path = Path(path)
    _require_file(path, "checkpoint")
    head = _read_head(path)
    if not head:
        raise CheckpointUnreadableError(f"{path} is empty, not a checkpoint; download it again")
    kind = _sniff_format(head, path.stat().st_size)
    if kind == "safetensors-truncated":
        raise _damaged(path, ValueError("the safetensors header runs past the end of the file"))
    if kind is None:
        raise CheckpointUnreadableError(
            f"{path} is not a checkpoint (neither safetensors nor a PyTorch file); "
            f"expected the ColorMNet file {CHECKPOINT_FILENAME}"
        )
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(
                path, map_location="cpu", weights_only=True, mmap=(kind == "torch-zip")
            )
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            raise CheckpointUnreadableError(
                f"{path} holds Python objects besides tensors, which are not loaded for safety "
                "(weights_only=True); use the official ColorMNet checkpoint"
            ) from None
        raise _damaged(path, error) from None
    except Exception as error:  # noqa: BLE001 - every reader failure means "damaged file"
        raise _damaged(path, error) from None
    return _unwrap_state_dict(raw, path)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise WeightsPathError(f"{what} {path} does not exist")
    if not path.is_file():
        raise WeightsPathError(f"{what} {path} is not a file")


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(16)
    except OSError as error:
        raise WeightsPathError(f"cannot read {path}: {error.strerror or error}") from None


def _sniff_format(head: bytes, size: int) -> str | None:
    """"safetensors", "torch-zip", "torch-legacy" or None, from the first 16 bytes."""
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"  # torch.save's default format is a zip archive
    if len(head) >= 9 and head[8:9] == b"{":
        header_size = int.from_bytes(head[:8], "little")
        if 0 < header_size <= size:
            return "safetensors"  # 8-byte little-endian header length, then JSON
        return "safetensors-truncated"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        # A bare pickle stream, as torch.save writes with _use_new_zipfile_serialization=False.
        return "torch-legacy"
    return None


def _damaged(path: Path, error: BaseException) -> CheckpointUnreadableError:
    detail = (str(error).strip() or type(error).__name__).splitlines()[0]
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return CheckpointUnreadableError(
        f"{path} is damaged or truncated and cannot be read ({detail}); delete it and download "
        "it again with `colorize weights download`"
    )


def _unwrap_state_dict(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    if _is_tensor_dict(raw):
        return dict(raw)
    if isinstance(raw, Mapping):
        for key in _WRAPPER_KEYS:
            if _is_tensor_dict(raw.get(key)):
                return dict(raw[key])
    raise CheckpointUnreadableError(
        f"{path} holds {_describe(raw)}, not a state_dict of named tensors; "
        f"expected the ColorMNet checkpoint {CHECKPOINT_FILENAME}"
    )


def _is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(repr(k) for k in list(value)[:5])
        return f"a dict with keys {keys}" if value else "an empty dict"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _Comparison:
    missing: list[str]
    wrong_shape: list[str]
    unexpected: list[str]

    def problems(self) -> list[str]:
        return self.missing + self.wrong_shape + self.unexpected

    def counts(self) -> str:
        """``"3 missing, 1 wrong shape"``: the size of each kind of problem."""
        kinds = (
            ("missing", self.missing),
            ("wrong shape", self.wrong_shape),
            ("unexpected", self.unexpected),
        )
        return ", ".join(f"{len(items)} {name}" for name, items in kinds if items)


def _shapes_of(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...] | None]:
    """Shape per key; None for a value that is not a tensor."""
    return {
        key: tuple(value.shape) if isinstance(value, torch.Tensor) else None
        for key, value in state_dict.items()
    }


def _compare(shapes: Mapping[str, tuple[int, ...] | None], spec: CheckpointSpec) -> _Comparison:
    missing: list[str] = []
    wrong_shape: list[str] = []
    for key, expected in spec.shapes.items():
        if key not in shapes:
            missing.append(f"missing {key} {list(expected)}")
            continue
        found = shapes[key]
        if found is None:
            wrong_shape.append(f"{key} is not a tensor")
        elif tuple(found) != expected:
            wrong_shape.append(f"{key} has shape {list(found)}, expected {list(expected)}")
    unexpected = [f"unexpected {key}" for key in shapes if key not in spec.shapes]
    return _Comparison(missing, wrong_shape, unexpected)


def checkpoint_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a checkpoint file; for safetensors only the header is read."""
    path = Path(path)
    _require_file(path, "checkpoint")
    head = _read_head(path)
    if _sniff_format(head, path.stat().st_size) != "safetensors":
        return {key: tuple(t.shape) for key, t in load_checkpoint(path).items()}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001 - any header problem means "damaged file"
        raise _damaged(path, error) from None


def check_shapes(
    shapes: Mapping[str, tuple[int, ...] | None], spec: CheckpointSpec | None = None
) -> list[str]:
    """Like :func:`check_state_dict`, for a ``{name: shape}`` map from :func:`checkpoint_shapes`."""
    return _compare(shapes, spec or default_spec()).problems()


def summarize_mismatch(
    shapes: Mapping[str, tuple[int, ...] | None], spec: CheckpointSpec | None = None
) -> str | None:
    """``"2 missing, 1 unexpected; e.g. missing x [3]"``, or None when the shapes match."""
    comparison = _compare(shapes, spec or default_spec())
    problems = comparison.problems()
    return f"{comparison.counts()}; e.g. {problems[0]}" if problems else None


def check_state_dict(
    state_dict: Mapping[str, Any], spec: CheckpointSpec | None = None
) -> list[str]:
    """Every way ``state_dict`` differs from the architecture; empty when it matches.

    Problems come as readable strings: missing keys first, then wrong shapes, then keys the
    architecture does not have.
    """
    return _compare(_shapes_of(state_dict), spec or default_spec()).problems()


def verify_state_dict(
    state_dict: Mapping[str, Any],
    spec: CheckpointSpec | None = None,
    *,
    label: str = "the checkpoint",
) -> None:
    """Raise :class:`ArchitectureMismatchError` listing what is missing or mismatched."""
    _refuse_mismatch(_compare(_shapes_of(state_dict), spec or default_spec()), label)


def verify_checkpoint_file(
    path: str | os.PathLike[str], spec: CheckpointSpec | None = None, *, label: str | None = None
) -> None:
    """Raise unless ``path`` is a readable checkpoint with the architecture's keys and shapes.

    :class:`CheckpointUnreadableError` for a damaged, truncated or foreign file,
    :class:`ArchitectureMismatchError` for another model. A short file is always caught: for
    safetensors the library refuses a header that promises more bytes than the file holds, and a
    PyTorch zip keeps its index at the very end, which a truncated file has lost.
    """
    shapes = checkpoint_shapes(path)
    _refuse_mismatch(_compare(shapes, spec or default_spec()), label or str(path))


def _refuse_mismatch(comparison: _Comparison, label: str) -> None:
    problems = comparison.problems()
    if not problems:
        return
    counts = comparison.counts()
    listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    if more > 0:
        listed += f"; and {more} more"
    raise ArchitectureMismatchError(
        f"{label} does not match the ColorMNet architecture ({counts}): {listed}; "
        f"use the official checkpoint {CHECKPOINT_FILENAME}"
    )


# --------------------------------------------------------------------------- converting


def convert_checkpoint(
    src_pth: str | os.PathLike[str],
    dst_safetensors: str | os.PathLike[str] | None = None,
    *,
    spec: CheckpointSpec | None = None,
) -> Path:
    """Check a PyTorch checkpoint against the architecture and write it as safetensors.

    ``dst_safetensors`` defaults to the source path with a ``.safetensors`` suffix. The output
    is written to a temporary file beside it and renamed only when complete; the source is
    never modified. Returns the output path.
    """
    src = Path(src_pth)
    dst = Path(dst_safetensors) if dst_safetensors is not None else src.with_suffix(".safetensors")
    if dst.suffix != ".safetensors":
        raise WeightsPathError(f"output {dst} must end in .safetensors")
    if src.exists() and dst.exists() and os.path.samefile(src, dst):
        raise WeightsPathError(f"output {dst} is the input file; choose another output path")
    state_dict = load_checkpoint(src)
    verify_state_dict(state_dict, spec, label=str(src))
    _write_safetensors(_independent_contiguous(state_dict), dst, {"converted_from": src.name})
    return dst


def _independent_contiguous(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory or are not contiguous; copy only those."""
    seen: set[int] = set()
    result: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().contiguous()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        if pointer in seen:
            tensor = tensor.clone()
        elif pointer != -1:
            seen.add(pointer)
        result[key] = tensor
    return result


def _write_safetensors(
    tensors: dict[str, torch.Tensor], dst: Path, metadata: dict[str, str]
) -> None:
    from safetensors.torch import save_file

    if not dst.parent.is_dir():
        raise WeightsPathError(f"output folder {dst.parent} does not exist")
    # A plain file name (not mkstemp) so the result gets the usual umask permissions.
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": "pt", **metadata})
        replace_file(tmp, dst)
    except OSError as error:
        raise WeightsPathError(f"cannot write {dst}: {error.strerror or error}") from None
    finally:
        tmp.unlink(missing_ok=True)
