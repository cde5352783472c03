"""``--shots``: a film split at its cuts into independent shot tasks, stitched back in order.

The single-process run resets the model's memory at each cut and starts the shot from the
reference that applies to it, so every shot is colorized as a video of its own. The expected
output is built that way by hand: each shot through the engine alone (one colorizer, real
synthetic weights), written in order by the same sink, with the same timestamps and audio. The
last test checks that expectation against ``colorize run --shots`` itself (skipped where the
run command has no ``--shots``). All outputs are H.264 at crf 0 from the same frames, so equal
colorized frames decode to equal pixels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import batch_helpers as h
from colorize.batch.plan import build_plan
from colorize.batch.progress import BatchProgress
from colorize.batch.results import ResultsFile
from colorize.batch.runner import run_batch
from colorize.batch.tasks import WorkerSettings
from video_helpers import audio_packets, write_video

CUT = 3
FRAMES = 6


def film(folder: Path) -> Path:
    """Two shots (a ramp, then its mirror) with an audio track; a main and a keyframe reference."""
    folder.mkdir(parents=True)
    first = h.clip_frames(CUT, seed=0)
    second = [np.ascontiguousarray(255 - f[:, ::-1]) for f in h.clip_frames(FRAMES - CUT, seed=3)]
    clip = write_video(folder / "film.mp4", first + second, fps=24, audio_codec="aac")
    h.write_reference(folder / "film.png", (200, 80, 40))
    (folder / "film.refs").mkdir()
    h.write_reference(folder / "film.refs" / f"ref_{CUT:06d}.png", (40, 90, 220))
    (folder / "cuts.txt").write_text(f"# the one cut\n{CUT}\n")
    return clip


def single_process(clip: Path, weights: Path, out: Path) -> Path:
    """Each shot alone through the engine, written in order through the normal sink."""
    from colorize.engine import EngineConfig, build_colorizer
    from colorize.reference import load_reference
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
    references = {0: clip.with_suffix(".png"), CUT: clip.parent / "film.refs" / f"ref_{CUT:06d}.png"}
    with open_source(clip) as source:
        frames = list(source.frames())
        size = source.info.upright_size
        colorized = []
        for start, end in ((0, CUT), (CUT, FRAMES)):
            reference = load_reference(references[start], size)
            colorized += list(colorizer.colorize([f.rgb for f in frames[start:end]], reference))
    with open_source(clip) as source:
        sink = open_sink(resolve_output(str(out), source.info, False), source, crf=0)
        for frame, rgb in zip(source.frames(), colorized):
            sink.write(rgb, frame.meta)
        sink.commit()
    return out


@pytest.fixture(scope="module")
def expected(tmp_path_factory, batch_weights) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("film")
    clip = film(folder / "in")
    return clip, single_process(clip, batch_weights, folder / "expected.mp4")


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_shot_split_gives_the_frames_of_the_single_process_run(kind, expected, batch_weights,
                                                               tmp_path, request):
    clip, reference_output = expected
    settings = WorkerSettings(weights=str(batch_weights), device="cpu", precision="fp32")
    if kind == "ray":
        request.getfixturevalue("ray_session")
        from colorize.batch.ray_executor import RayExecutor

        executor = RayExecutor(settings, "local", cpus_per_task=1)
    else:
        from colorize.batch.local import LocalExecutor

        executor = LocalExecutor(settings, workers=1)
    outdir = tmp_path / "out"
    plan = build_plan(clip.parent, outdir, {"shots": str(clip.parent / "cuts.txt"), "crf": 0})
    summary = run_batch(plan, executor, ResultsFile(outdir), weights_label=batch_weights.name,
                        progress=BatchProgress(1, enabled=False))
    [record] = summary.records
    assert record.status == "ok", record.error
    assert record.shots == 2 and record.frames == FRAMES
    got, want = h.decode(Path(record.output)), h.decode(reference_output)
    assert len(got) == len(want) == FRAMES
    for index, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {index} differs"
    # (The expected second shot used the keyframe reference, the first the main one: equal
    # frames mean each shot task picked the reference that applies to it.)
    # Timing and audio as in the single-process output; no parts left behind.
    assert _times(Path(record.output)) == _times(reference_output)
    assert audio_packets(Path(record.output)) == audio_packets(reference_output)
    assert not any(p.name.startswith(".") for p in outdir.iterdir())


def _times(path: Path) -> list[Fraction]:
    import av

    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def _run_options() -> set[str]:
    from colorize.cli import cli

    return {opt for param in cli.commands["run"].params for opt in param.opts}


def test_the_expected_frames_are_those_of_colorize_run_with_shots(expected, batch_weights, tmp_path):
    """The hand-built expectation above against the real single-process run (memory reset at
    the cut, keyframe reference from frame 3), so the split path is checked against it too."""
    options = _run_options()
    if "--shots" not in options:
        pytest.skip("this checkout's 'colorize run' has no --shots yet")
    from click.testing import CliRunner

    from colorize.cli import cli

    clip, reference_output = expected
    out = tmp_path / "run.mp4"
    args = ["run", clip, "--ref", clip.with_suffix(".png"),
            "--ref", f"{CUT}={clip.parent / 'film.refs' / f'ref_{CUT:06d}.png'}",
            "--shots", clip.parent / "cuts.txt", "--crf", "0", "-o", out,
            "--weights", batch_weights, "--device", "cpu", "--fp32", "-q"]
    if "--checkpoint-every" in options:
        args += ["--checkpoint-every", "0"]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got, want = h.decode(out), h.decode(reference_output)
    assert len(got) == len(want) == FRAMES
    for index, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {index} differs"


def test_whole_video_task_uses_keyframe_references_like_colorize_run(expected, batch_weights,
                                                                     tmp_path):
    """Without --shots a video with clip.refs/ runs as one task whose keyframe references take
    effect at their frames, exactly as `colorize run --ref MAIN --ref 3=KEY` does."""
    from click.testing import CliRunner

    from colorize.batch.local import LocalExecutor
    from colorize.cli import cli

    clip, _ = expected
    outdir = tmp_path / "out"
    settings = WorkerSettings(weights=str(batch_weights), device="cpu", precision="fp32")
    plan = build_plan(clip.parent, outdir, {"crf": 0})
    summary = run_batch(plan, LocalExecutor(settings, workers=1), ResultsFile(outdir),
                        weights_label=batch_weights.name, progress=BatchProgress(1, enabled=False))
    [record] = summary.records
    assert record.status == "ok", record.error
    run_output = tmp_path / "run.mp4"
    args = ["run", clip, "--ref", clip.with_suffix(".png"),
            "--ref", f"{CUT}={clip.parent / 'film.refs' / f'ref_{CUT:06d}.png'}",
            "--crf", "0", "-o", run_output, "--weights", batch_weights, "--device", "cpu",
            "--fp32", "-q", "--checkpoint-every", "0"]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got, want = h.decode(Path(record.output)), h.decode(run_output)
    assert len(got) == len(want) == FRAMES
    for index, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {index} differs"
    # The keyframe mattered: with the main reference alone frame CUT comes out otherwise.
    plain = tmp_path / "plain.mp4"
    plain_args = ["run", clip, "--ref", clip.with_suffix(".png"), "--crf", "0", "-o", plain,
                  "--weights", batch_weights, "--device", "cpu", "--fp32", "-q",
                  "--checkpoint-every", "0"]
    result = CliRunner().invoke(cli, [str(a) for a in plain_args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not np.array_equal(h.decode(plain)[CUT], got[CUT])


def test_keyframe_references_inside_shots_give_the_single_runs_frames(batch_weights, tmp_path):
    """Keyframe references in the middle of shots join each shot task at their frames, as in
    the single run; short GOPs make every shot task after the first start from a seek."""
    from click.testing import CliRunner

    from colorize.batch.local import LocalExecutor
    from colorize.cli import cli

    folder = tmp_path / "in"
    folder.mkdir()
    frames = h.clip_frames(4, seed=1) + [np.ascontiguousarray(255 - f[:, ::-1])
                                         for f in h.clip_frames(6, seed=4)]
    clip = write_video(folder / "film.mp4", frames, fps=24, audio_codec="aac",
                       options={"x264-params": "keyint=3:min-keyint=3:scenecut=0:bframes=1"})
    h.write_reference(folder / "film.png", (200, 80, 40))
    (folder / "film.refs").mkdir()
    keyframes = {2: (40, 90, 220), 7: (30, 200, 60)}   # inside shot 0 (0-3) and shot 1 (4-9)
    for frame, colour in keyframes.items():
        h.write_reference(folder / "film.refs" / f"ref_{frame:06d}.png", colour)
    (folder / "cuts.txt").write_text("4\n")

    outdir = tmp_path / "out"
    settings = WorkerSettings(weights=str(batch_weights), device="cpu", precision="fp32")
    plan = build_plan(folder, outdir, {"shots": str(folder / "cuts.txt"), "crf": 0})
    summary = run_batch(plan, LocalExecutor(settings, workers=1), ResultsFile(outdir),
                        weights_label=batch_weights.name, progress=BatchProgress(1, enabled=False))
    [record] = summary.records
    assert record.status == "ok", record.error
    assert record.shots == 2 and record.frames == 10

    def single_run(out: Path, *keyframe_frames: int) -> list[np.ndarray]:
        refs = [arg for frame in keyframe_frames for arg in
                ("--ref", f"{frame}={folder / 'film.refs' / f'ref_{frame:06d}.png'}")]
        args = ["run", clip, "--ref", folder / "film.png", *refs, "--shots", folder / "cuts.txt",
                "--crf", "0", "-o", out, "--weights", batch_weights, "--device", "cpu", "--fp32",
                "-q", "--checkpoint-every", "0"]
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return h.decode(out)

    got, want = h.decode(Path(record.output)), single_run(tmp_path / "run.mp4", *keyframes)
    assert len(got) == len(want) == 10
    for index, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(a, b), f"frame {index} differs"
    # The mid-shot references mattered: without the one at 7, frame 7 comes out otherwise.
    assert not np.array_equal(single_run(tmp_path / "without7.mp4", 2)[7], got[7])
