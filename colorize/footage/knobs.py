"""The ``run`` command's settings as the fingerprint's references and knobs.

Everything that can change an output pixel, timestamp or byte of the encode is a knob: the
engine configuration with the device and precision actually used, the weights' content, the
output form and quality, the package and torch versions, and any option this module does not
know (a new option counts as a knob until it is listed as harmless). Options that only change
what is printed, or where, are left out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from colorize.footage.fingerprint import JSON, path_fingerprint
from colorize.footage.references import parse_ref_option

#: Options that do not change the output (or are fingerprinted on their own).
NOT_KNOBS = frozenset({
    "quiet", "verbose", "plan_only", "resume", "checkpoint_every", "overwrite", "output",
    "keep_shots",
    "input_path", "reference_path", "references", "report", "report_path",
    # Already in the engine configuration (resolved), so raw spellings do not matter:
    "device", "precision", "weights", "memory_mode", "mem_every", "top_k",
    "max_mid_term_frames", "min_mid_term_frames", "num_prototypes", "max_long_term_elements",
    "deep_update_every", "no_long_term", "max_side", "chunk_size", "ref_is_first_frame",
})


def reference_files(value: Any) -> dict[str, Path]:
    """``--ref`` values (one path, or several ``FRAME=PATH`` / ``PATH``) -> label -> file."""
    if value is None:
        return {}
    values: Iterable[Any] = [value] if isinstance(value, (str, Path)) else value
    files: dict[str, Path] = {}
    for item in values:
        spec = parse_ref_option(str(item))
        files["main" if spec.frame is None else f"frame {spec.frame}"] = spec.path
    return files


def run_knobs(*, engine_config: Any, device_type: str, precision: str, target_kind: str,
              container: str | None, crf: int | None, fps: float | None,
              extra_options: Mapping[str, Any]) -> dict[str, JSON]:
    """The knobs of one run (see the module docstring)."""
    import torch

    from colorize import __version__

    config = dataclasses.asdict(engine_config)
    config.pop("memory_limit_bytes", None)
    config["weights"] = path_fingerprint(Path(engine_config.weights))
    config["device"] = device_type
    config["precision"] = precision
    memory = config.pop("memory", {})
    knobs: dict[str, JSON] = {
        **_jsonable(config),
        **_jsonable(memory),
        "output": f"{target_kind} {container or ''}".strip(),
        "crf": crf,
        "colorize version": __version__,
        "torch version": torch.__version__,
    }
    if fps is not None:
        knobs["fps"] = fps
    for name, value in extra_options.items():
        if name not in NOT_KNOBS:
            knobs[name] = _option_value(value)
    return knobs


def _option_value(value: Any) -> JSON:
    if isinstance(value, Path) or (isinstance(value, str) and value and Path(value).exists()):
        path = Path(value)
        return path_fingerprint(path) if path.exists() else str(path)
    if isinstance(value, (list, tuple)):
        return [_option_value(item) for item in value]
    return _jsonable(value)


def _jsonable(value: Any) -> JSON:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
