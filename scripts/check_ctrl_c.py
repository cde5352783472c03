#!/usr/bin/env python3
"""Repeat the Ctrl-C check of tests/runner/test_ctrl_c.py many times, optionally under CPU load.

    python scripts/check_ctrl_c.py [--runs 50] [--busy 4] [--moment "as it starts running"]

Each run starts ``comfy-run`` against the fake server, sends SIGINT at the chosen moment and
checks that it exits 130 with our prompt deleted or interrupted. ``--busy N`` starts N processes
that spin on the CPU for the duration (they are stopped at the end). A check to run by hand
(issue 20: 50 passes in a row under 4 busy processes), not a test of the suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runner"))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402
from test_ctrl_c import CASES, assert_cancelled, interrupt_at  # noqa: E402


def one_run(moment: str, folder: Path) -> float:
    """One Ctrl-C check on a fresh server; returns seconds from SIGINT to exit."""
    with FakeComfyServer(FakeConfig()) as server:
        code, run = interrupt_at(server, moment, folder, timeout=60)
        assert_cancelled(server, code, run)
        return run.seconds_to_exit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--busy", type=int, default=0, help="CPU-spinning processes to run meanwhile")
    parser.add_argument("--moment", default="as it starts running", choices=list(CASES))
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.busy)]
    passed, times = 0, []
    try:
        for index in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                try:
                    times.append(one_run(args.moment, Path(folder)))
                except AssertionError as exc:
                    print(f"run {index + 1}: FAILED: {str(exc).splitlines()[0] if str(exc) else exc!r}", flush=True)
                    break
            passed += 1
    finally:
        for process in busy:
            process.kill()
            process.wait()
    slowest = f", SIGINT to exit {min(times):.2f}-{max(times):.2f} s" if times else ""
    print(f"{passed}/{args.runs} passed in a row ({args.moment!r}, {args.busy} busy processes{slowest})")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
