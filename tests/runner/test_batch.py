"""Batch runs: params parsing, job identity, validation before queueing, scheduling and resuming.

These use an in-process backend (no HTTP) to pin down the scheduler's logic;
``test_batch_server.py`` runs batches through the fake ComfyUI server.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runner.batch import (
    MANIFEST_NAME,
    BatchOptions,
    JobOutcome,
    ServerPicker,
    job_identity,
    read_params,
    run_batch,
    summary_table,
)
from runner.workflow import PreparedWorkflow, WorkflowError

FIXTURES = Path(__file__).parent / "fixtures"


class MemoryBackend:
    """Runs 'prompts' by writing one file per job; records which server ran what."""

    def __init__(self, object_info: dict[str, Any], delay: float = 0.0, fail_on: set[int] | None = None) -> None:
        self.info = object_info
        self.delay = delay
        self.fail_on = fail_on or set()
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.queued: dict[str, int] = {}
        self.uploads: list[tuple[str, Path]] = []
        self.lock = threading.Lock()

    def object_info(self, server: str) -> dict[str, Any]:
        return self.info

    def queue_remaining(self, server: str) -> int:
        with self.lock:
            return self.queued.get(server, 0)

    def upload(self, server: str, path: Path) -> str:
        self.uploads.append((server, path))
        return f"up_{path.name}"

    def models(self, server: str, folder: str) -> list[str]:
        return []

    def run(self, server: str, prepared: PreparedWorkflow, out_dir: Path) -> JobOutcome:
        with self.lock:
            self.queued[server] = self.queued.get(server, 0) + 1
        time.sleep(self.delay)
        with self.lock:
            self.queued[server] -= 1
            self.ran.append((server, prepared.api))
        width = prepared.api["1"]["inputs"]["width"]
        if width in self.fail_on:
            return JobOutcome("p-fail", "execution_error", error="node 2 (ImageInvert): boom")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "invert_00001_.png").write_bytes(b"x" * width)
        return JobOutcome(f"p-{width}", "success", [{"path": "invert_00001_.png", "size": width, "node": "3"}])


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return json.loads((FIXTURES / "object_info.json").read_text())


def _params(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "params.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


WORKFLOW = str(FIXTURES / "workflows/01_empty_invert_save.api.json")


def test_job_identity_is_stable_and_sensitive() -> None:
    wf = {"1": {"class_type": "X", "inputs": {}}}
    assert job_identity(wf, {"a": 1, "b": 2}) == job_identity(wf, {"b": 2, "a": 1})
    assert job_identity(wf, {"a": 1}) != job_identity(wf, {"a": 2})
    assert job_identity(wf, {"a": 1}) != job_identity({"2": {"class_type": "X", "inputs": {}}}, {"a": 1})


def test_bad_params_lines_all_reported(tmp_path: Path) -> None:
    path = _params(tmp_path, ['{"1.width": 8}', "# comment", "", "not json", "[1, 2]"])
    with pytest.raises(WorkflowError) as caught:
        read_params(path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["params.jsonl line 4", "params.jsonl line 5"]


def test_every_job_validated_before_anything_runs(tmp_path: Path, object_info: dict) -> None:
    backend = MemoryBackend(object_info)
    path = _params(tmp_path, [{"1.width": 8}, {"1.width": -5}, {"1.nope": 1}])
    with pytest.raises(WorkflowError) as caught:
        run_batch(WORKFLOW, path, backend, BatchOptions(["http://a"], tmp_path / "out"))
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith("line 2:")
    assert caught.value.problems[1].startswith("line 3:")
    assert backend.ran == []
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_batch_runs_all_spreads_and_resumes(tmp_path: Path, object_info: dict) -> None:
    backend = MemoryBackend(object_info, delay=0.01)
    rows = [{"1.width": 8 + i} for i in range(24)] + [{"1.width": 8}]  # last line repeats the first
    path = _params(tmp_path, rows)
    servers = ["http://a", "http://b", "http://c"]
    out = tmp_path / "out"
    result = run_batch(WORKFLOW, path, backend, BatchOptions(servers, out))
    assert len(backend.ran) == 24  # duplicate line ran once
    widths = sorted(api["1"]["inputs"]["width"] for _, api in backend.ran)
    assert widths == list(range(8, 32))
    assert {server for server, _ in backend.ran} == set(servers)
    assert all(r.status == "success" for r in result.records)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len(manifest["jobs"]) == 24
    job = manifest["jobs"][result.records[0].job_id]
    assert (out / job["outputs"][0]["path"]).read_bytes() == b"x" * 8
    assert "24 success" in summary_table(result)

    # Rerun: nothing runs again; delete one output and exactly that job runs again.
    backend.ran.clear()
    again = run_batch(WORKFLOW, path, backend, BatchOptions(servers, out))
    assert backend.ran == [] and {r.status for r in again.records} == {"skipped"}
    (out / job["outputs"][0]["path"]).unlink()
    run_batch(WORKFLOW, path, backend, BatchOptions(servers, out))
    assert [api["1"]["inputs"]["width"] for _, api in backend.ran] == [8]


def test_failed_job_is_recorded_and_rerun_later(tmp_path: Path, object_info: dict) -> None:
    backend = MemoryBackend(object_info, fail_on={9})
    path = _params(tmp_path, [{"1.width": 8}, {"1.width": 9}])
    out = tmp_path / "out"
    result = run_batch(WORKFLOW, path, backend, BatchOptions(["http://a"], out))
    assert [r.status for r in result.records] == ["success", "execution_error"]
    assert "boom" in summary_table(result)
    assert len(result.failed) == 1
    backend.fail_on.clear()
    backend.ran.clear()
    run_batch(WORKFLOW, path, backend, BatchOptions(["http://a"], out))
    assert [api["1"]["inputs"]["width"] for _, api in backend.ran] == [9]


def test_registry_id_with_params_and_uploads(tmp_path: Path, object_info: dict) -> None:
    backend = MemoryBackend(object_info)
    picture = tmp_path / "p.png"
    picture.write_bytes(b"png")
    path = _params(tmp_path, [{"size": 10}, {"width": 12, "color": 0}])
    result = run_batch("solid-invert", path, backend, BatchOptions(["http://a"], tmp_path / "out"))
    assert [r.status for r in result.records] == ["success", "success"]
    ran = sorted((api["1"]["inputs"]["width"], api["1"]["inputs"]["height"]) for _, api in backend.ran)
    assert ran == [(10, 10), (12, 64)]
    with pytest.raises(WorkflowError, match="line 1: --param colour"):
        run_batch("solid-invert", _params(tmp_path, [{"colour": 1}]), backend, BatchOptions(["http://a"], tmp_path / "o2"))


def test_picker_prefers_least_pending_server() -> None:
    queues = {"a": 3, "b": 0, "c": 1}
    picker = ServerPicker(list(queues), lambda s: queues[s])
    assert picker.acquire() == "b"
    # Our in-flight job counts even before b's queue shows it: b now carries 1, like c.
    assert picker.acquire() == "c"
    assert [picker.acquire() for _ in range(4)] == ["b", "c", "b", "c"]
    assert picker.acquire() == "a"  # all at 3 pending: the one with fewest of ours
    picker.release("c")
    picker.release("c")
    assert picker.acquire() == "c"


def test_unreachable_server_ranks_last() -> None:
    def queue(server: str) -> int:
        if server == "down":
            raise ConnectionError("refused")
        return 5

    picker = ServerPicker(["down", "up"], queue)
    assert picker.acquire() == "up"


def test_input_keys_upload_local_files_per_job(tmp_path: Path, object_info: dict) -> None:
    picture = tmp_path / "a.png"
    picture.write_bytes(b"png")
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "width": 8,
                                                     "height": 8, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    backend = MemoryBackend(object_info)
    backend.run = lambda server, prepared, out: (backend.ran.append((server, prepared.api)), JobOutcome("p", "success"))[1]
    rows = [(1, {"input:1.image": str(picture), "2.width": 16})]
    result = run_batch(workflow, rows, backend, BatchOptions(["http://a"], tmp_path / "out"))
    assert result.records[0].status == "success"
    assert backend.uploads == [("http://a", picture)]
    assert backend.ran[0][1]["1"]["inputs"]["image"] == "up_a.png"
