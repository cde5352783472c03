"""A real ComfyUI server for the integration tests: start-up with the pack installed, helpers.

Runs only when ``COMFYUI_DIR`` (a ComfyUI checkout, 0.3.56 or newer) and ``COMFYUI_PYTHON`` (a
Python that runs it, with this package installed) are set. The server gets its own input, output,
temp and user folders and the synthetic checkpoint through an extra model paths file (the
checkout's own models folder is left alone); the pack is uninstalled afterwards unless it was
installed before.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "colorize"))
sys.path.insert(0, str(TESTS / "colorize" / "comfyui"))

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")

SKIP_REASON = "needs a ComfyUI checkout: set COMFYUI_DIR and COMFYUI_PYTHON (a Python that runs it with colorize installed)"
needs_comfyui = pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON), reason=SKIP_REASON)

CHECKPOINT = "colorize-integration-synthetic.safetensors"
START_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read() or b"null")


def post_json(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        data = reply.read()
        return json.loads(data) if data else None


def start_server(tmp_path_factory):
    """A ComfyUI server with the pack installed and the synthetic checkpoint; yields its URL
    (a generator for a module-scoped fixture)."""
    from colorize.comfyui import installer

    comfyui = Path(COMFYUI_DIR).resolve()
    root = tmp_path_factory.mktemp("comfyui-run")
    loader = installer.loader_path(comfyui)
    installed_before = loader.exists()
    result = subprocess.run([sys.executable, "-m", "colorize", "comfyui", "install", str(comfyui),
                             "--python", COMFYUI_PYTHON], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    models = root / "models"
    (models / "colormnet").mkdir(parents=True)
    weights = models / "colormnet" / CHECKPOINT
    subprocess.run([sys.executable, str(TESTS / "fixtures" / "make_test_weights.py"), "--spec",
                    str(TESTS.parent / "colorize" / "model" / "checkpoint_spec.json"), "--out", str(weights)],
                   check=True, capture_output=True)
    extra = root / "extra_model_paths.yaml"
    extra.write_text(f"colorize_integration:\n    base_path: {models}\n    colormnet: colormnet\n")
    folders = {name: root / name for name in ("input", "output", "temp", "user")}
    for folder in folders.values():
        folder.mkdir()
    port = free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--disable-auto-launch", "--extra-model-paths-config", str(extra),
         "--input-directory", str(folders["input"]), "--output-directory", str(folders["output"]),
         "--temp-directory", str(folders["temp"]), "--user-directory", str(folders["user"]),
         "--database-url", f"sqlite:///{root / 'comfyui.db'}"],
        cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited with {process.returncode}: {(root / 'server.log').read_text()[-3000:]}")
            try:
                get_json(url + "/system_stats")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("ComfyUI did not answer within the start timeout")
                time.sleep(1)
        yield {"url": url, "root": root, "weights": weights, "log": root / "server.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if not installed_before and loader.exists():
            installer.uninstall(comfyui)




def comfy_run(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "runner.cli", "run", *args, "--server", url]
