"""``runner.AsyncComfyClient`` against a real ComfyUI server: a registry workflow end to end.

Runs only when ``COMFYUI_DIR`` and ``COMFYUI_PYTHON`` are set (see ``comfyui_server.py``). The
``solid-invert`` registry workflow (core nodes only) is checked against its JSON Schema, prepared
with a wildcard override against the server's ``/object_info``, run three times at once on one
event loop, and each output is downloaded and checked.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import needs_comfyui, start_server  # noqa: E402

pytestmark = needs_comfyui


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start_server(tmp_path_factory)


def test_registry_workflow_through_the_async_client(server, tmp_path):
    from jsonschema import Draft202012Validator
    from PIL import Image

    from runner import AsyncComfyClient, FinishState
    from runner.registry import load_registry
    from runner.workflow import prepare_workflow

    entry = load_registry().get("solid-invert")
    colours = [0x102030, 0x405060, 0x708090]
    for colour in colours:
        assert Draft202012Validator(entry.json_schema()).is_valid({"color": colour, "filename_prefix": "async/x"})

    async def main():
        async with AsyncComfyClient(server["url"], poll_interval=0.5) as client:
            object_info = await client.object_info()

            def prepared(colour):
                sets, _, _ = entry.overrides({"color": colour, "filename_prefix": f"async/{colour:06x}"})
                return prepare_workflow(entry.template(), object_info, sets + ["*.width=96", "*.height=40"], [],
                                        upload=lambda path: path.name)

            runs = [prepared(colour) for colour in colours]
            results = await asyncio.gather(*(client.run(p.api, timeout=300) for p in runs))
            manifests = [await client.download_outputs(result, tmp_path / result.prompt_id) for result in results]
            return results, manifests, await client.queue()

    results, manifests, queue = asyncio.run(main())
    assert [r.state for r in results] == [FinishState.SUCCESS] * 3
    assert len({r.prompt_id for r in results}) == 3
    for colour, result, manifest in zip(colours, results, manifests):
        saved = tmp_path / result.prompt_id / manifest.outputs[0]["path"]
        with Image.open(saved) as image:
            assert image.size == (96, 40)
            inverted = [255 - c for c in colour.to_bytes(3, "big")]
            # The server works in float32 (colour / 255, then 1 - x, then x * 255 truncated): +-1.
            assert all(abs(a - b) <= 1 for a, b in zip(image.convert("RGB").getpixel((0, 0)), inverted))
    ours = {item[1] for item in queue["queue_running"] + queue["queue_pending"]}
    assert not ours & {r.prompt_id for r in results}
