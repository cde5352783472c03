#!/usr/bin/env python3
"""Write the full-size synthetic ColorMNet checkpoint (rule crc32-normal-v1, ~495 MB).

Uses the packaged architecture spec (colorize/model/checkpoint_spec.json) and the rule in
tests/fixtures/make_test_weights.py, so end-to-end checks of download, conversion and loading
can run on a file with the official keys and shapes without the licensed weights:

    python scripts/make_test_weights.py /tmp/synthetic.pth            # PyTorch format
    python scripts/make_test_weights.py /tmp/synthetic.safetensors    # safetensors
    python scripts/make_test_weights.py --digest                      # compare with the rule
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RULE_FILE = REPO_ROOT / "tests" / "fixtures" / "make_test_weights.py"
SPEC_FILE = REPO_ROOT / "colorize" / "model" / "checkpoint_spec.json"


def _rule_module():
    spec = importlib.util.spec_from_file_location("make_test_weights", RULE_FILE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {RULE_FILE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="*", type=Path, help=".pth/.pt or .safetensors to write")
    parser.add_argument("--digest", action="store_true", help="print the whole-state_dict sha256")
    args = parser.parse_args(argv)
    if not args.out and not args.digest:
        parser.error("give an output file or --digest")

    rule = _rule_module()
    state_dict = rule.build_state_dict(rule.load_spec(str(SPEC_FILE)))
    if args.digest:
        count = sum(t.numel() for t in state_dict.values())
        print(f"rule {rule.RULE_ID}: {len(state_dict)} tensors, {count} elements, "
              f"sha256 {rule.digest(state_dict)}")
    for path in args.out:
        _write(state_dict, path, rule.RULE_ID)
        print(f"wrote {path}")
    return 0


def _write(state_dict, path: Path, rule_id: str) -> None:
    """Write beside the target and rename, so an interrupted run leaves no half file."""
    import os

    import torch

    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(dict(state_dict), str(tmp), metadata={"rule": rule_id})
    else:
        torch.save(state_dict, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
