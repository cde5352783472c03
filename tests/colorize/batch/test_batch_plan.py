"""The batch plan: folder pairing, keyframe references, manifests, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import batch_helpers as h
from colorize.batch.plan import PlanError, build_plan
from colorize.batch.results import ResultRecord, ResultsFile


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_pairs_each_video_with_its_references(tmp_path):
    src = tmp_path / "src"
    touch(src / "b.mp4"), touch(src / "b.jpg")
    touch(src / "a.mkv"), touch(src / "a.refs" / "ref_000000.png"), touch(src / "a.refs" / "ref_000120.png")
    touch(src / "c.avi")                       # no reference: reported, not fatal
    touch(src / "notes.txt")
    plan = build_plan(src, tmp_path / "out", {"crf": 20, "max_side": None})
    assert [j.input.name for j in plan.jobs] == ["a.mkv", "b.mp4", "c.avi"]
    a, b, c = plan.jobs
    assert a.references.main is None and [f for f, _ in a.references.keyframes] == [0, 120]
    assert a.references.for_shot(50).name == "ref_000000.png"
    assert a.references.for_shot(120).name == "ref_000120.png"
    assert b.references.main == src / "b.jpg" and b.references.for_shot(99) == src / "b.jpg"
    assert c.problem and "c.png" in c.problem
    assert [j.output.name for j in plan.jobs] == ["a.mkv", "b.mp4", "c.mp4"]
    assert a.options == {"crf": 20}


def test_keyframe_references_after_a_main_one(tmp_path):
    src = tmp_path / "src"
    touch(src / "a.mp4"), touch(src / "a.png"), touch(src / "a.refs" / "ref_000200.png")
    refs = build_plan(src, tmp_path / "out").jobs[0].references
    assert refs.for_shot(0) == src / "a.png" and refs.for_shot(199) == src / "a.png"
    assert refs.for_shot(200).name == "ref_000200.png"


def test_badly_named_keyframe_reference_fails_that_video_only(tmp_path):
    src = tmp_path / "src"
    touch(src / "a.mp4"), touch(src / "a.refs" / "frame120.png")
    touch(src / "b.mp4"), touch(src / "b.png")
    a, b = build_plan(src, tmp_path / "out").jobs
    assert "ref_<frame>" in a.problem and b.problem is None


def test_csv_and_jsonl_manifests(tmp_path):
    touch(tmp_path / "v" / "one.mp4"), touch(tmp_path / "v" / "one.png")
    touch(tmp_path / "v" / "two.mov"), touch(tmp_path / "v" / "k.png")
    csv = tmp_path / "list.csv"
    csv.write_text("input,references,output,crf,ref_is_first_frame\n"
                   "v/two.mov,v/one.png;30=v/k.png,second.mkv,12,yes\n"
                   "v/one.mp4,v/one.png,,,\n")
    two, one = build_plan(csv, tmp_path / "out").jobs
    assert two.input == tmp_path / "v" / "two.mov" and two.output == tmp_path / "out" / "second.mkv"
    assert two.options == {"crf": 12, "ref_is_first_frame": True}
    assert two.references.keyframes == ((30, tmp_path / "v" / "k.png"),)
    assert one.output.name == "one.mp4" and one.options == {}
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"input": "v/one.mp4", "references": ["v/one.png"], "max_side": 448})
                     + "\n\n")
    [job] = build_plan(jsonl, tmp_path / "out").jobs
    assert job.options == {"max_side": 448} and job.references.main == tmp_path / "v" / "one.png"


@pytest.mark.parametrize("text, message", [
    ("input,colour\na.mp4,red\n", "unknown column"),
    ("input,references,output\na.mp4,a.png,x.mp4\nb.mp4,a.png,x.mp4\n", "would both write"),
    ("input,references,crf\na.mp4,a.png,high\n", "expected int"),
    ("input,references,output\na.mp4,a.png,x.avi\n", "batch outputs are video files"),
])
def test_manifest_problems_are_one_clear_line(tmp_path, text, message):
    touch(tmp_path / "a.mp4"), touch(tmp_path / "b.mp4"), touch(tmp_path / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(PlanError, match=message) as info:
        build_plan(manifest, tmp_path / "out")
    assert "\n" not in str(info.value)


def test_outdir_must_not_be_the_source_folder(tmp_path):
    touch(tmp_path / "a.mp4"), touch(tmp_path / "a.png")
    with pytest.raises(PlanError, match="outputs would replace the inputs"):
        build_plan(tmp_path, tmp_path / "." )


def test_missing_reference_in_a_manifest_fails_that_video(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"input": "a.mp4", "references": "gone.png"}) + "\n")
    [job] = build_plan(manifest, tmp_path / "out").jobs
    assert "reference not found" in job.problem


def test_skip_needs_same_fingerprint_and_intact_output(tmp_path):
    src = h.make_folder(tmp_path / "src", videos=1, frames=2)
    [job] = build_plan(src, tmp_path / "out").jobs
    job.output.parent.mkdir()
    job.output.write_bytes(b"colorized")
    from colorize.batch.results import sha256_of

    results = ResultsFile(tmp_path / "out")
    results.append(ResultRecord(str(job.input), "ok", str(job.output), sha256_of(job.output), 2,
                                fingerprint=job.fingerprint("w")))
    reread = ResultsFile(tmp_path / "out")
    assert reread.completed(str(job.input), job.output, job.fingerprint("w"))
    assert not reread.completed(str(job.input), job.output, job.fingerprint("other-weights"))
    (src / "clip_00.png").write_bytes((src / "clip_00.png").read_bytes() + b" ")  # reference changed
    assert not reread.completed(str(job.input), job.output, job.fingerprint("w"))
    (tmp_path / "out" / "batch.jsonl").write_text('{"input": "cut in ha')   # crash mid-line
    assert ResultsFile(tmp_path / "out").previous == {}
