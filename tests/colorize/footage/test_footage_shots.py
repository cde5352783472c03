"""Shot lists: the three file formats, their one-line errors, and cut detection on a tiny clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colorize.errors import ColorizeError, ShotListError
from colorize.footage.shots import (
    CutDetector,
    CutDetectorConfig,
    Shot,
    read_shots_file,
    shot_index_at,
    shots_from_cuts,
)


def write(tmp_path: Path, text: str, name: str = "cuts.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- plain list -------------------------------------------------------------------------------


def test_plain_list_with_comments_blank_lines_and_frame_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "# cuts from the editor\n0\n\n  12  # door opens\n40\n")
    assert read_shots_file(path, frame_count=50) == [12, 40]
    assert read_shots_file(path) == [12, 40]  # frame count unknown: no upper bound


def test_empty_list_means_one_shot(tmp_path: Path) -> None:
    assert read_shots_file(write(tmp_path, "# nothing\n\n"), frame_count=10) == []


# -- PySceneDetect CSV ------------------------------------------------------------------------

CSV_HEADER = (
    "Scene Number,Start Frame,Start Timecode,Start Time (seconds),End Frame,End Timecode,"
    "End Time (seconds),Length (frames),Length (timecode),Length (seconds)\n"
)


def test_pyscenedetect_csv_start_frames_are_one_based(tmp_path: Path) -> None:
    text = (
        "Timecode List:,00:00:00.480,00:00:01.600\n"
        + CSV_HEADER
        + "1,1,00:00:00.000,0.000,12,00:00:00.480,0.480,12,00:00:00.480,0.480\n"
        + "2,13,00:00:00.480,0.480,40,00:00:01.600,1.600,28,00:00:01.120,1.120\n"
        + "3,41,00:00:01.600,1.600,50,00:00:02.000,2.000,10,00:00:00.400,0.400\n"
    )
    assert read_shots_file(write(tmp_path, text, "scenes.csv"), frame_count=50) == [12, 40]


def test_csv_written_by_pyscenedetect_itself(tmp_path: Path) -> None:
    pytest.importorskip("scenedetect", reason="PySceneDetect (colorize-video[shots]) not installed")
    from scenedetect.common import FrameTimecode
    from scenedetect.output import write_scene_list

    def tc(frame: int) -> FrameTimecode:
        return FrameTimecode(frame, fps=25.0)

    scenes = [(tc(0), tc(12)), (tc(12), tc(40)), (tc(40), tc(50))]
    path = tmp_path / "scenes.csv"
    with path.open("w", newline="") as handle:
        write_scene_list(handle, scenes)
    assert read_shots_file(path, frame_count=50) == [12, 40]


# -- CMX3600 EDL ------------------------------------------------------------------------------

EDL_25 = """TITLE: REEL 3 CONFORM
FCM: NON-DROP FRAME

001  AX       V     C        00:10:00:00 00:10:04:10 01:00:00:00 01:00:04:10
* FROM CLIP NAME: A001C003.MOV
002  AX       A     C        00:10:00:00 00:10:04:10 01:00:00:00 01:00:04:10
003  BX       V     C        00:20:00:00 00:20:00:00 01:00:04:10 01:00:04:10
003  CX       V     D    025 00:30:01:00 00:30:06:15 01:00:04:10 01:00:10:00
M2   CX       050.0                00:30:01:00
004  DX       B     C        00:40:00:00 00:40:02:00 01:00:10:00 01:00:12:00
"""


def test_edl_record_timecodes_from_the_program_start(tmp_path: Path) -> None:
    # Record ins 01:00:00:00, 01:00:04:10 (a dissolve: its zero-length outgoing half and the
    # audio event are skipped) and 01:00:10:00 -> frames 0, 110 and 250 at 25 fps.
    path = write(tmp_path, EDL_25, "conform.edl")
    assert read_shots_file(path, frame_count=300, fps=25) == [110, 250]


def test_edl_drop_frame_timecodes(tmp_path: Path) -> None:
    text = (
        "TITLE: NTSC\nFCM: DROP FRAME\n"
        "001  AX  V  C  00:00:00;00 00:01:00;02 00:00:00;00 00:01:00;02\n"
        "002  AX  V  C  00:00:00;00 00:09:00;00 00:01:00;02 00:10:00;00\n"
        "003  AX  V  C  00:00:00;00 00:00:10;00 00:10:00;00 00:10:10;00\n"
    )
    # 00:01:00;02 is the 1800th frame and 00:10:00;00 the 17,982nd in drop-frame counting.
    cuts = read_shots_file(write(tmp_path, text, "ntsc.edl"), fps=30000 / 1001)
    assert cuts == [1800, 17982]


def test_edl_without_frame_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShotListError, match="frame rate"):
        read_shots_file(write(tmp_path, EDL_25, "conform.edl"), frame_count=300)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "frame_count", "expected"),
    [
        ("10\n5\n", None, r"line 2: frame 5 comes after 10 \(line 1\); list cut frames in increasing"),
        ("10\n10\n", None, r"line 2: frame 10 is listed twice \(also line 1\)"),
        ("10\n-3\n", None, r"line 2: frame -3 is negative"),
        ("10\n50\n", 50, r"line 2: frame 50 is past the last frame \(the video has 50 frames, 0-49\)"),
        ("10\ncut at 20\n", None, r"line 2: 'cut at 20' is not a frame number"),
        ("10\n4,312\n", None, r"line 2: '4,312' is not a frame number"),
        (CSV_HEADER + "1,1,x\n2,abc,x\n", None, r"line 3: start frame 'abc' is not a frame number"),
        ("Timecode List:,00:00:01.000\n1,2,3\n", None, r"no 'Start Frame' column"),
        (EDL_25.replace("01:00:10:00 01:00:12:00", "01:00:10:00 1:00:12"), None, r"'1:00:12' is not a timecode"),
        (EDL_25.replace("01:00:04:10 01:00:10:00", "01:00:04:10 01:00:10:30"), None, r"out of range at 25 frames"),
        ("TITLE: X\n001  AX  V  C  garbage\n", None, r"line 2: '001  AX  V  C  garbage' is not a CMX3600 event"),
    ],
)
def test_bad_lists_give_one_line_naming_file_and_line(
    tmp_path: Path, text: str, frame_count: int | None, expected: str
) -> None:
    path = write(tmp_path, text, "bad.edl" if "TITLE" in text else "bad.txt")
    with pytest.raises(ShotListError, match=expected) as info:
        read_shots_file(path, frame_count=frame_count, fps=25)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert info.value.exit_code == 8


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ShotListError, match="not found; check the path given to --shots"):
        read_shots_file(tmp_path / "missing.txt")
    with pytest.raises(ShotListError, match="is a folder"):
        read_shots_file(tmp_path)
    binary = tmp_path / "frame.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ShotListError, match="not a text file"):
        read_shots_file(binary)


def test_unreadable_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "10\n")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ShotListError, match=r"cannot read shots file .*: Permission denied"):
        read_shots_file(path)


# -- shots from cuts --------------------------------------------------------------------------


def test_shots_cover_every_frame_once() -> None:
    shots = shots_from_cuts([0, 12, 40], 50)
    assert shots == [Shot(0, 0, 12), Shot(1, 12, 40), Shot(2, 40, 50)]
    assert sum(shot.frame_count for shot in shots) == 50
    assert 12 in shots[1] and 40 not in shots[1]
    assert shots_from_cuts([], 7) == [Shot(0, 0, 7)]
    assert shots_from_cuts([], 0) == []
    assert [shot_index_at([12, 40], f) for f in (0, 11, 12, 39, 40, 49)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(("cuts", "expected"), [([12, 12], "not after"), ([30, 12], "not after"), ([50], "past the last frame")])
def test_shots_from_bad_cuts(cuts: list[int], expected: str) -> None:
    with pytest.raises(ShotListError, match=expected):
        shots_from_cuts(cuts, 50)


# -- detection --------------------------------------------------------------------------------


def synthetic_clip(lengths: tuple[int, ...], height: int = 72, width: int = 96) -> list[np.ndarray]:
    """Visually different segments (gradient, blocks, stripes), each panning slowly with noise."""
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    looks = [
        lambda t: 40 + (xx + t) * 1.5,
        lambda t: np.where(((xx + t) // 16 + yy // 16) % 2 == 0, 60.0, 190.0),
        lambda t: 128 + 90 * np.sin((yy + 0.7 * t) / 5.0),
    ]
    frames = []
    for segment, length in enumerate(lengths):
        for t in range(length):
            grey = looks[segment % len(looks)](float(t)) + rng.normal(0, 5, (height, width))
            frames.append(np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return frames


@pytest.fixture
def scenedetect_installed() -> None:
    pytest.importorskip("scenedetect", reason="PySceneDetect (colorize-video[shots]) not installed")


@pytest.mark.usefixtures("scenedetect_installed")
def test_detector_finds_the_cuts_at_the_frame_itself() -> None:
    frames = synthetic_clip((24, 20, 22))
    detector = CutDetector()
    answers = [detector.feed(frame) for frame in frames]
    assert [i for i, is_cut in enumerate(answers) if is_cut] == [24, 44]
    assert detector.cuts == [24, 44] and detector.frames_fed == 66
    # Zero lookahead: a detector that has seen frames 0..24 only already says 24 is a cut.
    early = CutDetector()
    assert [early.feed(frame) for frame in frames[:25]][-1] is True


@pytest.mark.usefixtures("scenedetect_installed")
def test_flash_gives_one_cut_and_short_shots_are_merged() -> None:
    frames = synthetic_clip((40,))
    frames[20] = np.full_like(frames[20], 250)  # a one-frame flash
    detector = CutDetector(CutDetectorConfig(min_shot_frames=10))
    for frame in frames:
        detector.feed(frame)
    assert detector.cuts == [20]  # the way back at 21 is suppressed, as documented
    # A cut within min_shot_frames of frame 0 is not taken.
    detector = CutDetector(CutDetectorConfig(min_shot_frames=10))
    for frame in synthetic_clip((5, 20)):
        detector.feed(frame)
    assert detector.cuts == []


@pytest.mark.usefixtures("scenedetect_installed")
def test_detector_downscales_large_and_grey_frames() -> None:
    small = synthetic_clip((18, 18), height=36, width=64)
    import cv2

    big = [cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR) for frame in small]
    detector = CutDetector()
    assert [i for i, frame in enumerate(big) if detector.feed(frame)] == [18]
    grey = CutDetector()
    assert [i for i, frame in enumerate(small) if grey.feed(frame[..., 0])] == [18]
    with pytest.raises(ValueError, match="uint8"):
        grey.feed(small[0].astype(np.float32))


def test_missing_scenedetect_says_what_to_install(hide_package) -> None:
    hide_package("scenedetect")
    with pytest.raises(ColorizeError, match=r"install colorize-video\[shots\]") as info:
        CutDetector()
    assert "\n" not in str(info.value) and info.value.exit_code == 1


@pytest.mark.usefixtures("scenedetect_installed")
@pytest.mark.parametrize("stop", [1, 10, 24, 25, 30, 44, 45, 60])
def test_restored_detector_decides_as_an_uninterrupted_one(stop: int) -> None:
    frames = synthetic_clip((24, 20, 22))
    frames[52] = np.full_like(frames[52], 250)  # a flash 8 frames after the cut at 44: suppressed
    whole = CutDetector()
    expected = [whole.feed(frame) for frame in frames]
    assert whole.cuts == [24, 44]

    first = CutDetector()
    answers = [first.feed(frame) for frame in frames[:stop]]
    meta, arrays = first.state_meta(), first.state_arrays()
    meta = json.loads(json.dumps(meta))  # as a checkpoint stores it
    resumed = CutDetector.restore(meta, {k: v.copy() for k, v in arrays.items()})
    answers += [resumed.feed(frame) for frame in frames[stop:]]
    assert answers == expected and resumed.cuts == whole.cuts and resumed.frames_fed == len(frames)
