"""``colorize --keep-shots``: shots kept beside the output with fingerprints; a rerun colorizes
only the shots whose frames, references, settings or weights changed, and its output equals a
fresh full run's.

The equality test runs the real engine on synthetic weights (64x64 frames, CPU fp32, H.264 at
crf 0, so equal colorized frames decode to equal pixels); the bookkeeping tests use the fake
colorizer, which is fast and counts the frames it is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS / "colorize"))

from video_helpers import (  # noqa: E402
    audio_packets, invoke, leftovers, read_video, tint, write_video)

SHOT = 3
CUTS = [3, 6, 9]
FRAMES = 12
# References: frame 0 (shot 0), 3 (starts shots 1 and 2), 7 (a keyframe inside shot 2) and
# 9 (shot 3). Replacing ref_000003 changes shots 1 and 2 and nothing else.
MID_SHOT = 7
REFERENCES = {0: (200, 60, 40), 3: (40, 90, 220), MID_SHOT: (60, 200, 90), 9: (230, 200, 40)}


def film_frames(count: int = FRAMES, size: int = 64) -> list[np.ndarray]:
    """Each shot its own texture, moving a little from frame to frame."""
    y, x = np.mgrid[0:size, 0:size]
    frames = []
    for t in range(count):
        shot = t // SHOT
        gray = (x * (2 + shot) + y * (3 - shot % 2) + 5 * t + 40 * shot) % 256
        frames.append(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    return frames


def reference_image(colour: tuple[int, int, int], size: int = 64) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    base = np.array(colour, dtype=np.float64)
    picture = base * (0.6 + 0.4 * (x[..., None] / size)) * (0.7 + 0.3 * (y[..., None] / size))
    return Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))


@pytest.fixture
def film(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(clip with audio, --ref-dir folder, cuts file)."""
    clip = write_video(tmp_path / "film.mp4", film_frames(), fps=24, audio_codec="aac")
    refs = tmp_path / "refs"
    refs.mkdir()
    for frame, colour in REFERENCES.items():
        reference_image(colour).save(refs / f"ref_{frame:06d}.png")
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("".join(f"{cut}\n" for cut in CUTS))
    return clip, refs, cuts


def kept(output: Path) -> Path:
    return output.with_name(output.name + ".colorize-shots")


def part_files(output: Path) -> dict[str, int]:
    """Kept parts by name -> modification time (a part written again gets a new one)."""
    return {p.name: p.stat().st_mtime_ns for p in kept(output).glob("shot-*.mp4")}


def summary(stderr: str) -> str:
    [line] = [line for line in stderr.splitlines() if line.startswith("shots: ")]
    return line


def test_rerun_after_one_reference_changed_redoes_its_shots_and_equals_a_full_run(
        film, synthetic_weights_path, tmp_path):
    clip, refs, cuts = film
    output = tmp_path / "out.mp4"
    engine = ["--weights", synthetic_weights_path, "--device", "cpu", "--fp32", "--crf", "0"]
    args = [clip, "--ref-dir", refs, "--shots", cuts, "--keep-shots", "-o", output, *engine,
            "--report", tmp_path / "kept.json"]

    first = invoke(args)
    assert summary(first.stderr) == "shots: 4 colorized, 0 reused"
    first_frames = read_video(output).frames
    before = part_files(output)
    assert len(before) == 4

    reference_image((150, 40, 200)).save(refs / "ref_000003.png")
    plan = invoke([*args, "--plan"])
    assert "2 of 4 shots to colorize (6 of 12 frames), 2 reused" in plan.stdout
    assert "shot    1: frames 3-5: colorize" in plan.stdout
    assert "shot    3: frames 9-11: reused" in plan.stdout
    assert part_files(output) == before        # --plan changes nothing

    second = invoke(args)
    assert summary(second.stderr) == "shots: 2 colorized, 2 reused"
    after = part_files(output)
    assert len(after) == 4
    unchanged = set(before) & set(after)
    assert len(unchanged) == 2 and all(before[name] == after[name] for name in unchanged)

    fresh = tmp_path / "fresh.mp4"
    invoke([clip, "--ref-dir", refs, "--shots", cuts, "-o", fresh, *engine,
            "--checkpoint-every", "0", "--report", tmp_path / "fresh.json"])
    got, want = read_video(output), read_video(fresh)
    assert len(got.frames) == len(want.frames) == FRAMES
    for index, (a, b) in enumerate(zip(got.frames, want.frames)):
        assert np.array_equal(a, b), f"frame {index} differs from the full run"
    assert got.times == want.times
    assert audio_packets(output) == audio_packets(fresh)
    assert leftovers(tmp_path) == []
    # The new reference reached the output: shots 1 and 2 changed, shots 0 and 3 did not.
    for index in range(FRAMES):
        same = np.array_equal(got.frames[index], first_frames[index])
        assert same == (index < SHOT or index >= 3 * SHOT), f"frame {index}"
    # The report scores every frame, the reused shots' from their kept records, as the full run.
    kept_report = json.loads((tmp_path / "kept.json").read_text())
    fresh_report = json.loads((tmp_path / "fresh.json").read_text())
    assert len(kept_report["frames"]) == FRAMES
    assert kept_report["frames"] == fresh_report["frames"]
    assert kept_report["shots"] == fresh_report["shots"]


# -- bookkeeping with the fake colorizer -----------------------------------------------------

@pytest.fixture
def fake_film(film):
    """The film without its mid-shot keyframe reference (the fake colorizer takes none)."""
    (film[1] / f"ref_{MID_SHOT:06d}.png").unlink()
    return film


def fake_args(fake_film, output: Path, *extra: object) -> list[object]:
    clip, refs, cuts = fake_film
    return [clip, "--ref-dir", refs, "--shots", cuts, "--keep-shots", "-o", output, "--crf", "0",
            *extra]


def test_other_weights_redo_every_shot(fake_film, fake_colorizer, tmp_path, monkeypatch):
    output = tmp_path / "out.mp4"
    invoke(fake_args(fake_film, output))
    assert len(fake_colorizer.seen_frames) == FRAMES
    result = invoke(fake_args(fake_film, output))
    assert summary(result.stderr) == "shots: 0 colorized, 4 reused"
    assert len(fake_colorizer.seen_frames) == FRAMES          # nothing colorized again

    other = tmp_path / "other-weights.safetensors"
    other.write_bytes(b"another checkpoint")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(other))
    result = invoke(fake_args(fake_film, output))
    assert summary(result.stderr) == "shots: 4 colorized, 0 reused"
    assert len(fake_colorizer.seen_frames) == 2 * FRAMES
    assert len(part_files(output)) == 4                        # the old weights' parts are gone


def test_changed_frames_redo_only_their_shot(fake_film, fake_colorizer, tmp_path):
    """One frame re-graded in a lossless master (a lossy re-encode would move every frame a
    little, and then every shot is redone: the fingerprint is of the decoded pixels)."""
    _, refs, cuts = fake_film
    clip, output = tmp_path / "master.mkv", tmp_path / "out.mp4"
    args = [clip, "--ref-dir", refs, "--shots", cuts, "--keep-shots", "-o", output]
    frames = film_frames()
    write_video(clip, frames, fps=24, codec="ffv1")
    invoke(args)
    frames[7] = np.ascontiguousarray(255 - frames[7])
    write_video(clip, frames, fps=24, codec="ffv1")
    fake_colorizer.seen_frames.clear()
    result = invoke(args)
    assert summary(result.stderr) == "shots: 1 colorized, 3 reused"
    # The colorizer got exactly shot 2's frames (reached by a seek), as a decode from the start.
    from colorize.video.source import open_source

    with open_source(clip) as source:
        decoded = [frame.rgb for frame in source.frames()]
    assert len(fake_colorizer.seen_frames) == SHOT
    for got, want in zip(fake_colorizer.seen_frames, decoded[2 * SHOT:3 * SHOT]):
        assert np.array_equal(got, want)
    assert len(read_video(output).frames) == FRAMES


def test_changed_setting_redoes_everything_and_output_has_every_frame(fake_film, fake_colorizer,
                                                                      tmp_path):
    output = tmp_path / "out.mp4"
    invoke(fake_args(fake_film, output))
    result = invoke(fake_args(fake_film, output, "--top-k", "20"))
    assert summary(result.stderr) == "shots: 4 colorized, 0 reused"
    decoded = read_video(output)
    assert len(decoded.frames) == FRAMES
    with av.open(str(fake_film[0])) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    assert decoded.times == times


def test_keep_shots_needs_shots(fake_film, fake_colorizer, tmp_path):
    clip, refs, _ = fake_film
    result = invoke([clip, "--ref-dir", refs, "--keep-shots", "-o", tmp_path / "o.mp4"],
                    exit_code=2)
    assert "--keep-shots keeps shots: add --shots FILE or --shots auto" in result.stderr
    assert not (tmp_path / "o.mp4").exists() and not kept(tmp_path / "o.mp4").exists()


def test_keep_shots_with_resume_is_refused(fake_film, fake_colorizer, tmp_path):
    result = invoke(fake_args(fake_film, tmp_path / "o.mp4", "--resume"), exit_code=2)
    assert "drop --resume" in result.stderr


def test_an_output_made_without_keep_shots_is_not_replaced(fake_film, fake_colorizer, tmp_path):
    output = tmp_path / "out.mp4"
    output.write_bytes(b"someone else's fake_film")
    result = invoke(fake_args(fake_film, output), exit_code=15)
    assert "--overwrite" in result.stderr
    assert output.read_bytes() == b"someone else's fake_film"


def test_plan_before_the_first_run_colorizes_everything(fake_film, fake_colorizer, tmp_path):
    output = tmp_path / "out.mp4"
    result = invoke(fake_args(fake_film, output, "--plan"))
    assert "4 of 4 shots to colorize (12 of 12 frames), 0 reused" in result.stdout
    assert fake_colorizer.seen_frames == []
    assert not output.exists() and not kept(output).exists()


def test_interrupted_run_keeps_the_shots_it_finished(fake_film, fake_colorizer, tmp_path):
    output = tmp_path / "out.mp4"
    done: list[int] = []

    def stop_in_shot_1(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
        if len(done) == SHOT + 2:
            raise KeyboardInterrupt
        done.append(1)
        return tint(frame, reference)

    fake_colorizer.transform = stop_in_shot_1
    invoke(fake_args(fake_film, output), exit_code=130)
    assert not output.exists()
    fake_colorizer.transform = None
    result = invoke(fake_args(fake_film, output))
    assert summary(result.stderr) == "shots: 3 colorized, 1 reused"
    assert leftovers(kept(output)) == []


def test_png_frames_output(fake_film, fake_colorizer, tmp_path):
    output = tmp_path / "frames"
    invoke(fake_args(fake_film, output))
    assert len(list(output.glob("*.png"))) == FRAMES
    result = invoke(fake_args(fake_film, output))
    assert summary(result.stderr) == "shots: 0 colorized, 4 reused"
    assert len(list(output.glob("*.png"))) == FRAMES


def test_shots_auto_finds_the_cuts_on_the_fingerprint_pass(fake_colorizer, red_reference,
                                                          tmp_path):
    pytest.importorskip("scenedetect", reason="PySceneDetect (colorize-video[shots]) not installed")
    length = 16                          # the detector's minimum shot is 15 frames
    frames = [np.full((48, 64, 3), 30 if t < length else 220, np.uint8) for t in range(2 * length)]
    clip = write_video(tmp_path / "two.mp4", frames, fps=24)
    output = tmp_path / "out.mp4"
    args = [clip, "--ref", red_reference, "--shots", "auto", "--keep-shots", "-o", output]
    plan = invoke([*args, "--plan"])
    assert f"shot    1: frames {length}-{2 * length - 1}: colorize" in plan.stdout
    assert summary(invoke(args).stderr) == "shots: 2 colorized, 0 reused"
    assert summary(invoke(args).stderr) == "shots: 0 colorized, 2 reused"
    assert len(fake_colorizer.seen_frames) == 2 * length
