"""``colorize keyframes INPUT -o DIR``: the folder it writes, the report's suggestions, reuse,
and bad input (one line, its exit code, nothing half-written, inputs untouched)."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from keyframe_clips import film  # noqa: E402
from video_helpers import invoke, leftovers, read_video, write_video  # noqa: E402

from colorize.footage.report import ConfidenceReport  # noqa: E402

KEYFRAME_FIELDS = {"serves", "source_frame", "shot", "shot_start", "shot_end", "group",
                   "still_serves", "reason", "score", "problems", "gray", "colour"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four-shot film (70 frames, 64x48) as H.264, and its cut list beside it."""
    folder = tmp_path_factory.mktemp("clip")
    path = write_video(folder / "film.mp4", film().frames)
    (folder / "cuts.txt").write_text("# first frames of shots\n20\n36\n54\n")
    return path


def snapshot(*paths: Path) -> dict[str, str]:
    files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def test_one_grey_still_per_group_and_a_complete_keyframes_json(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    result = invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt", "-q"])
    assert "4 keyframe(s) in 3 group(s)" in result.stdout
    data = json.loads((out / "keyframes.json").read_text())
    assert data["format"] == "colorize-keyframes" and data["frame_count"] == 70
    assert data["cuts"] == [20, 36, 54] and data["frame_size"] == [64, 48]
    keyframes = data["keyframes"]
    assert all(set(k) == KEYFRAME_FIELDS for k in keyframes)
    assert [(k["serves"], k["shot_start"], k["shot_end"], k["group"]) for k in keyframes] == \
        [(0, 0, 20, 0), (20, 20, 36, 1), (36, 36, 54, 2), (54, 54, 70, 0)]
    assert [k["colour"] for k in keyframes] == \
        ["ref_000000.png", "ref_000020.png", "ref_000036.png", "ref_000054.png"]
    assert keyframes[3]["gray"] == "gray/ref_000000.png"
    assert keyframes[0]["source_frame"] >= film().fade_end
    assert sorted(p.name for p in (out / "gray").iterdir()) == \
        ["ref_000000.png", "ref_000020.png", "ref_000036.png"]
    assert data["groups"][0]["serves"] == [0, 54]
    assert data["groups"][0]["colour"] == ["ref_000000.png", "ref_000054.png"]
    # Each still is its source frame's luminance at the frame size.
    decoded = read_video(clip).frames
    for group in data["groups"]:
        still = np.asarray(Image.open(out / group["still"]))
        assert still.shape == (48, 64)
        source = decoded[group["source_frame"]]
        assert np.abs(still.astype(int) - source.mean(axis=2)).max() <= 2
    assert leftovers(out) == []


def test_the_review_page_and_contact_sheet(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt", "-q"])
    page = (out / "review.html").read_text()
    for frame in (0, 20, 36, 54):
        assert f'id="frame-{frame}"' in page
        assert f"--regenerate {frame}" in page
    assert 'src="gray/ref_000020.png"' in page and "save it as <code>ref_000020.png" in page
    sheet = Image.open(out / "review.png")
    assert sheet.format == "PNG" and sheet.width > 2 * 64
    # A colour reference put in place shows on the next review.
    Image.fromarray(np.full((48, 64, 3), (200, 80, 40), np.uint8)).save(out / "ref_000020.png")
    invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt", "-q"])
    page = (out / "review.html").read_text()
    assert 'src="ref_000020.png"' in page and "1 colour reference(s) present" in page
    assert (out / "ref_000020.png").is_file()  # colour files are never touched


def test_report_suggestions_are_added(clip: Path, tmp_path: Path) -> None:
    report = ConfidenceReport()
    cuts = [20, 36, 54]
    for frame in range(70):
        shot = sum(frame >= c for c in cuts)
        report.add(frame, 0.2 if 40 <= frame < 48 else 0.9, reference="ref.png", shot=shot)
    report_path = tmp_path / "previous.json"
    report.write(report_path)
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt", "--report",
            report_path, "-q"])
    keyframes = json.loads((out / "keyframes.json").read_text())["keyframes"]
    low = [k for k in keyframes if k["reason"] == "low score"]
    assert [k["serves"] for k in low] == [report.low_confidence_spans()[0].keyframe]
    assert 40 <= low[0]["source_frame"] < 48 and low[0]["shot"] == 2
    assert (out / low[0]["gray"]).is_file() and low[0]["gray"] == f"gray/{low[0]['colour']}"
    assert len(keyframes) == 5


def test_without_shots_frame_0_only(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    assert [(k["serves"], k["reason"], k["shot_end"]) for k in data["keyframes"]] == \
        [(0, "first frame", 70)]
    assert not (out / "shots.otio").exists()


def test_shots_auto_finds_the_cuts(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("scenedetect")
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "--shots", "auto", "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    assert data["cuts"] == [20, 36, 54]
    assert [k["group"] for k in data["keyframes"]] == [0, 1, 2, 0]


def test_shots_timeline_is_written_for_an_editor(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("opentimelineio")
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt", "-q"])
    assert (out / "shots.otio").is_file() and (out / "shots.edl").is_file()
    again = tmp_path / "again"
    invoke(["keyframes", clip, "-o", again, "--shots", out / "shots.edl", "-q"])
    assert json.loads((again / "keyframes.json").read_text())["cuts"] == [20, 36, 54]


def test_an_unchanged_request_is_not_scanned_again(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    args = ["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt"]
    invoke(args + ["-q"])
    before = (out / "keyframes.json").stat().st_mtime_ns
    result = invoke(args)
    assert "not scanned again" in result.stderr and "frames 70/70" not in result.stderr
    assert (out / "keyframes.json").stat().st_mtime_ns == before
    result = invoke(args + ["--group-threshold", "1.0"])
    assert "frames 70/70" in result.stderr  # progress while it scans
    assert "4 keyframe(s) in 4 group(s)" in result.stdout
    assert sorted(p.name for p in (out / "gray").iterdir()) == \
        ["ref_000000.png", "ref_000020.png", "ref_000036.png", "ref_000054.png"]
    # The review's command for a keyframe repeats the pick's options, so it reuses this pick.
    page = (out / "review.html").read_text()
    command = html.unescape(re.search(r"make it again: <code>(.*?--regenerate 20)</code>",
                                      page).group(1))
    words = shlex.split(command)
    assert words[:2] == ["colorize", "keyframes"] and "--group-threshold" in words
    result = invoke(words[1:words.index("--generate")])
    assert "not scanned again" in result.stderr


def test_colour_files_left_from_another_pick_are_named(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    out.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(out / "ref_000030.png")
    result = invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt"])
    assert "ref_000030.png is not a keyframe of this pick" in result.stderr
    result = invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt"])
    assert "not scanned again" in result.stderr  # and still said when the pick is reused
    assert "ref_000030.png is not a keyframe of this pick" in result.stderr
    assert (out / "ref_000030.png").is_file()  # named, never deleted


def refuse(args: list, exit_code: int, *watched: Path) -> str:
    before = snapshot(*watched)
    result = invoke(args, exit_code=exit_code)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert snapshot(*watched) == before
    return lines[0]


def test_bad_input(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    cuts = clip.parent / "cuts.txt"
    invoke(["keyframes", clip, "-o", out, "--shots", cuts, "-q"])
    watched = (clip.parent, out)
    line = refuse(["keyframes", tmp_path / "missing.mp4", "-o", out], 10, *watched)
    assert "input not found" in line
    past = tmp_path / "past.txt"
    past.write_text("20\n90\n")
    line = refuse(["keyframes", clip, "-o", out, "--shots", past, "--rescan"], 8, *watched)
    assert "frame 90 is past the last frame" in line
    fresh = tmp_path / "fresh"
    refuse(["keyframes", clip, "-o", fresh, "--shots", past], 8, *watched)
    assert not fresh.exists()  # a mistake found before the scan creates nothing
    line = refuse(["keyframes", clip, "-o", out, "--report", tmp_path / "none.json"], 1, *watched)
    assert "--report" in line and "not found" in line
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    line = refuse(["keyframes", clip, "-o", out, "--report", broken], 1, *watched)
    assert "cannot read --report" in line
    other = ConfidenceReport()
    for frame in range(12):
        other.add(frame, 0.9)
    other_path = tmp_path / "other.json"
    other.write(other_path)
    line = refuse(["keyframes", clip, "-o", out, "--report", other_path], 1, *watched)
    assert "covers 12 frames but the input has 70" in line
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    line = refuse(["keyframes", clip, "-o", a_file], 17, *watched, a_file)
    assert "is a file" in line
    assert leftovers(out) == []


def test_an_interrupted_scan_keeps_the_previous_folder(clip: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from colorize.references.picker import KeyframePicker

    out = tmp_path / "refs"
    cuts = clip.parent / "cuts.txt"
    invoke(["keyframes", clip, "-o", out, "--shots", cuts, "-q"])
    before = snapshot(out)
    real_feed = KeyframePicker.feed

    def feed(self: KeyframePicker, index: int, rgb: np.ndarray) -> None:
        if index == 40:
            raise KeyboardInterrupt
        real_feed(self, index, rgb)

    monkeypatch.setattr(KeyframePicker, "feed", feed)
    result = invoke(["keyframes", clip, "-o", out, "--shots", cuts, "--group-threshold", "1",
                     "-q"], exit_code=130)
    assert "keeps its previous keyframes" in result.stderr
    assert snapshot(out) == before and leftovers(out) == []


def test_listed_as_a_command_and_the_default_command_still_runs() -> None:
    result = invoke(["--help"])
    assert "'colorize keyframes --help'" in result.stdout
    result = invoke(["keyframes", "--help"])
    assert "--group-threshold" in result.stdout and "gray/ref_NNNNNN.png" in result.stdout
    result = invoke(["missing-input.mp4", "--ref", "ref.png"], exit_code=10)
    assert "input not found" in result.stderr


def test_the_reports_suggestions_point_to_this_command() -> None:
    report = ConfidenceReport(input="film.mp4")
    for frame in range(30):
        report.add(frame, 0.2 if 10 <= frame < 20 else 0.9)
    span = report.low_confidence_spans()[0]
    assert "colorize keyframes INPUT -o DIR --report REPORT.json" in span.message
    assert "colorize keyframes film.mp4 -o DIR --shots FILE|auto --report REPORT.json" in \
        report.text_plot()


def test_a_rotated_video_gives_upright_stills(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "rotated.mp4", film().frames[20:36], rotation=90)
    out = tmp_path / "refs"
    invoke(["keyframes", clip, "-o", out, "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    assert data["frame_size"] == [48, 64]
    assert np.asarray(Image.open(out / data["groups"][0]["still"])).shape == (64, 48)


def test_a_folder_of_images(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(film().frames[:40]):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("20\n36\n")
    out = tmp_path / "refs"
    invoke(["keyframes", folder, "-o", out, "--shots", cuts, "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    assert [k["serves"] for k in data["keyframes"]] == [0, 20, 36]
    source = data["groups"][1]["source_frame"]
    still = np.asarray(Image.open(out / data["groups"][1]["still"]))
    assert np.array_equal(still, film().frames[source][..., 0])  # lossless input: exact


def test_the_colour_files_it_asks_for_are_what_colorize_ref_dir_reads(clip: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "refs"
    cuts = clip.parent / "cuts.txt"
    invoke(["keyframes", clip, "-o", out, "--shots", cuts, "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    for group in data["groups"]:  # colour each still (here: a tint) under every name it serves
        grey = np.asarray(Image.open(out / group["still"]))
        colour = np.stack([grey, grey // 2, grey // 3], axis=2).astype(np.uint8)
        for name in group["colour"]:
            Image.fromarray(colour).save(out / name)
    plan = invoke([clip, "--ref-dir", out, "--shots", cuts, "--plan"]).stdout
    for keyframe in data["keyframes"]:
        start, last = keyframe["shot_start"], keyframe["shot_end"] - 1
        assert f"frames {start}-{last}, reference {out / keyframe['colour']} (frame {start})" \
            in plan


def test_a_shot_with_nothing_good_in_its_search_says_so(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs"
    # Shot 0 fades up from black over 8 frames: its first 4 hold nothing but a fade.
    invoke(["keyframes", clip, "-o", out, "--shots", clip.parent / "cuts.txt",
            "--search-frames", "4", "--sample-every", "1", "-q"])
    data = json.loads((out / "keyframes.json").read_text())
    first, second = data["keyframes"][:2]
    assert first["source_frame"] < 4 and first["problems"]
    assert set(first["problems"]) <= {"near-black", "flat", "fading"}
    assert 20 <= second["source_frame"] < 24 and second["problems"] == []
    assert data["settings"]["search_frames"] == 4 and data["settings"]["sample_every"] == 1
    assert "best picture found is" in (out / "review.html").read_text()
