"""Keyframes, shots, the report and the example workflows on a real ComfyUI server.

``comfy-run run colorize-video-keyframes`` (a main reference, a folder of keyframe references,
cut frames, crf 0) gives the same decoded frames and report as ``colorize --ref ... --ref F=...
--shots FILE --report --crf 0`` on the same clip and weights, run with the server's Python (the
same torch build), with the audio there; the pack's
example workflows are listed by ``GET /workflow_templates`` and each one's JSON is served.
Skipped without ``COMFYUI_DIR`` / ``COMFYUI_PYTHON`` (see comfyui_server.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import (  # noqa: E402
    CHECKPOINT,
    COMFYUI_PYTHON,
    RUN_TIMEOUT_S,
    comfy_run,
    get_json,
    needs_comfyui,
    start_server,
)

pytestmark = needs_comfyui

SIZE = (48, 64)
CUT = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start_server(tmp_path_factory)


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """Two shots (a slow pan, then a checkerboard from frame 16) with AAC audio, a main reference,
    keyframe references for frames 6 and 16, and the cut list."""
    from PIL import Image

    from comfy_clips import colourful
    from video_helpers import write_video

    folder = tmp_path_factory.mktemp("film")
    height, width = SIZE
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x * 255 // width + y).clip(0, 255).astype(np.uint8)
    board = ((((x // 8) + (y // 8)) % 2) * 60 + 20).astype(np.uint8)
    frames = [np.roll(ramp, t // 2, axis=1) for t in range(CUT)] + [np.roll(board, t, axis=1) for t in range(6)]
    video = write_video(folder / "film.mp4", [np.repeat(f[..., None], 3, axis=2) for f in frames], audio_codec="aac")
    Image.fromarray(colourful(SIZE)).save(folder / "main.png")
    refs = folder / "refs"
    refs.mkdir()
    Image.fromarray(colourful((30, 40))[::-1].copy()).save(refs / "ref_000006.png")
    Image.fromarray(colourful(SIZE)[:, ::-1].copy()).save(refs / f"ref_{CUT:06d}.png")
    (folder / "cuts.txt").write_text(f"# first frames of shots\n{CUT}\n")
    return {"video": video, "main": folder / "main.png", "refs": refs, "cuts": folder / "cuts.txt",
            "count": len(frames)}


def comparable(report: dict, main: str = "reference") -> dict:
    """A report with its input and reference paths reduced to file names (the server has its own
    folders), the main reference named as the node names its IMAGE input."""
    report = json.loads(json.dumps(report))
    report.pop("input")

    def name(path: str) -> str:
        return "reference" if Path(path).name == main else Path(path).name

    for frame in report["frames"]:
        frame["reference"] = name(frame["reference"])
    for shot in report["shots"]:
        shot["references"] = [name(r) for r in shot["references"]]
    return report


def test_colorize_video_keyframes_through_comfy_run_equals_the_cli(server, film, tmp_path):
    from video_helpers import read_video

    out = tmp_path / "out"
    done = subprocess.run(
        comfy_run(server["url"], "colorize-video-keyframes", "--param", f"video={film['video']}",
                  "--param", f"reference={film['main']}", "--param", f"keyframes={film['refs']}",
                  "--param", f"shots={CUT}", "--param", f"checkpoint={CHECKPOINT}", "--param", "precision=fp32",
                  "--param", "crf=0", "--out", str(out)),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    cli_out = tmp_path / "cli.mp4"
    # The CLI in the server's own Python: the same torch build, so the same numbers to the bit.
    cli = subprocess.run(
        [COMFYUI_PYTHON, "-m", "colorize", str(film["video"]), "--ref", str(film["main"]),
         "--ref", f"6={film['refs'] / 'ref_000006.png'}", "--ref", f"{CUT}={film['refs'] / f'ref_{CUT:06d}.png'}",
         "--shots", str(film["cuts"]), "--report", str(tmp_path / "cli.json"), "-o", str(cli_out),
         "--weights", str(server["weights"]), "--device", "cpu", "--fp32", "-q", "--crf", "0"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert cli.returncode == 0, cli.stderr
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 1, sorted(p.name for p in out.iterdir())
    node, reference = read_video(videos[0]), read_video(cli_out)
    assert len(node.frames) == len(reference.frames) == film["count"]
    for index, (a, b) in enumerate(zip(node.frames, reference.frames)):
        assert np.array_equal(a, b), f"frame {index}: max difference {np.abs(a.astype(int) - b.astype(int)).max()}"
    assert node.audio_codecs == ["aac"] and node.times == reference.times

    # The report (Preview as Text output, saved as text) is the CLI's --report.
    texts = sorted(out.glob("*-text-*.txt"))
    assert len(texts) == 1, sorted(p.name for p in out.iterdir())
    served, written = json.loads(texts[0].read_text()), json.loads((tmp_path / "cli.json").read_text())
    assert comparable(served) == comparable(written, main=film["main"].name)
    assert [s["start"] for s in served["shots"]] == [0, CUT]
    assert served["shots"][0]["references"][-1].endswith("ref_000006.png")
    assert sorted(out.glob("*-image-*.png")), "the report plot was not saved"


def test_workflow_templates_list_the_pack_and_serve_each_workflow(server):
    from colorize.comfyui import installer

    templates = get_json(server["url"] + "/workflow_templates")
    assert sorted(templates.get("colorize", [])) == sorted(installer.EXAMPLE_WORKFLOWS)
    for name, source in installer.example_sources().items():
        served = get_json(f"{server['url']}/api/workflow_templates/colorize/{name}.json")
        assert served == json.loads(source.read_text()), name
