"""The pack's example workflows in ComfyUI's own web frontend, in a headless Chromium.

For each example workflow the server serves from the pack folder, the page loads it with the
frontend's ``app.loadGraphData`` and asserts two things: the frontend found no missing node types
(it passes them to the ``beforeConfigureGraph`` extension hook), and the API prompt it builds
(``app.graphToPrompt()``) has the same nodes and inputs as comfy-run's registry form of that
workflow. Chromium is driven over the DevTools protocol with ``websockets``.

Skipped unless ``COMFYUI_DIR`` / ``COMFYUI_PYTHON`` (see comfyui_server.py) and ``CHROMIUM`` (a
headless-capable Chromium, e.g. Debian's ``/usr/bin/chromium``) are set.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import needs_comfyui, start_server  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM")
pytestmark = [needs_comfyui, pytest.mark.skipif(
    not CHROMIUM, reason="needs a headless Chromium: set CHROMIUM (e.g. /usr/bin/chromium)")]

#: Example workflow (template name) -> its comfy-run registry id.
REGISTRY_IDS = {"colorize-video": "colorize-video", "colorize-frames": "colorize-frames",
                "colorize-video-keyframes": "colorize-video-keyframes", "colorize-film": "colorize-film"}
PAGE_TIMEOUT_S = 180

LOAD_AND_BUILD = """
(async () => {
  if (!window.__colorizeHooked) {
    app.registerExtension({name: 'colorize.browser-test',
      beforeConfigureGraph(graphData, missingNodeTypes) { window.__colorizeMissing = missingNodeTypes; }});
    window.__colorizeHooked = true;
  }
  window.__colorizeMissing = null;
  const workflow = await (await fetch('/api/workflow_templates/colorize/__NAME__.json')).json();
  __PREPARE__
  await app.loadGraphData(workflow);
  const prompt = await app.graphToPrompt();
  const missing = (window.__colorizeMissing || []).map(m => typeof m === 'string' ? m : m.type);
  return {hooked: window.__colorizeMissing !== null, missing, output: prompt.output};
})()
"""


def load_and_build(page: "DevTools", name: str, prepare: str = "") -> dict:
    """Load a served example workflow in the frontend (``prepare``: JavaScript run on
    ``workflow`` first) and return the missing node types it reported and the prompt it built."""
    return page.evaluate(LOAD_AND_BUILD.replace("__NAME__", name).replace("__PREPARE__", prepare), timeout=120)


class DevTools:
    """One page of a headless Chromium, spoken to over the DevTools protocol."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self._socket = self._stack.enter_context(connect(url, max_size=64 * 1024 * 1024, open_timeout=30))
        self._ids = itertools.count(1)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict:
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start_server(tmp_path_factory)


@pytest.fixture(scope="module")
def page(server):
    """The server's frontend, loaded and ready (``window.app`` with a graph)."""
    profile = tempfile.mkdtemp(prefix="colorize-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tools = None
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            assert browser.poll() is None, f"Chromium exited with {browser.returncode}"
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as reply:
            targets = json.loads(reply.read())
        tools = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        tools.call("Page.navigate", url=server["url"])
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while not tools.evaluate("!!(window.app && window.app.graph && window.app.canvas)"):
            assert time.monotonic() < deadline, "ComfyUI's frontend did not start in the page"
            time.sleep(1)
        yield tools
    finally:
        if tools is not None:
            tools.close()
        browser.terminate()
        try:
            browser.wait(timeout=30)
        except subprocess.TimeoutExpired:
            browser.kill()


@pytest.mark.parametrize("name", sorted(REGISTRY_IDS))
def test_example_workflow_loads_without_missing_nodes_and_builds_the_registry_prompt(page, name):
    from runner.registry import load_registry

    result = load_and_build(page, name)
    assert result["hooked"], "the frontend did not call beforeConfigureGraph"
    assert result["missing"] == [], f"missing node types: {result['missing']}"
    template = load_registry().get(REGISTRY_IDS[name]).template()
    built = result["output"]
    assert {k: v["class_type"] for k, v in built.items()} == {k: v["class_type"] for k, v in template.items()}
    assert {k: v["inputs"] for k, v in built.items()} == {k: v["inputs"] for k, v in template.items()}


def test_the_check_sees_a_missing_node_type(page):
    # The same load with one node's class renamed: the frontend must report it, or the test above
    # would pass for any workflow.
    result = load_and_build(page, "colorize-video", "workflow.nodes[0].type = 'ColorizeNoSuchNode';")
    assert result["missing"] == ["ColorizeNoSuchNode"]
