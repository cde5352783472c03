"""Batch and catalog commands end to end through fake ComfyUI servers on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import requests
from click.testing import CliRunner

from runner.batch import MANIFEST_NAME, BatchOptions, ClientBackend, run_batch
from runner.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
WORKFLOW = str(FIXTURES / "workflows/01_empty_invert_save.api.json")


def _prompt_ids(server: Any) -> list[str]:
    """Prompts a server received and ran, read back over HTTP from its history and queue."""
    history = requests.get(f"{server.url}/history", timeout=5).json()
    queue = requests.get(f"{server.url}/queue", timeout=5).json()
    queued = [item[1] for key in ("queue_running", "queue_pending") for item in queue[key]]
    return list(history) + queued


def _posts(server: Any) -> int:
    return sum(1 for method, path, _ in server.requests if method == "POST" and path.endswith("/prompt"))


def _params(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "params.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_batch_over_three_servers_no_duplicates_and_resume(tmp_path: Path, make_comfy_server: Callable) -> None:
    servers = [make_comfy_server() for _ in range(3)]
    for server in servers:
        server.config.node_delay = 0.01  # long enough that queues build up and spreading matters
    rows = [{"1.width": 16 + i, "3.filename_prefix": f"batch/w{i}"} for i in range(12)]
    path = _params(tmp_path, rows)
    out = tmp_path / "out"
    backend = ClientBackend(poll_interval=0.05, timeout=30)
    try:
        result = run_batch(WORKFLOW, path, backend, BatchOptions([s.url for s in servers], out))
    finally:
        backend.close()
    assert [r.status for r in result.records] == ["success"] * 12
    posted = [pid for s in servers for pid in _prompt_ids(s)]
    assert len(posted) == 12 and len(set(posted)) == 12
    assert sum(_posts(s) for s in servers) == 12
    assert sum(1 for s in servers if _prompt_ids(s)) >= 2  # the work was spread
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len(manifest["jobs"]) == 12
    for record in manifest["jobs"].values():
        files = [o for o in record["outputs"] if o.get("path")]
        assert len(files) == 1 and (out / files[0]["path"]).stat().st_size == files[0]["size"]
        assert record["prompt_id"] in posted

    backend = ClientBackend(poll_interval=0.05, timeout=30)
    try:
        again = run_batch(WORKFLOW, path, backend, BatchOptions([s.url for s in servers], out))
    finally:
        backend.close()
    assert {r.status for r in again.records} == {"skipped"}
    assert sum(_posts(s) for s in servers) == 12  # nothing queued twice


def test_dead_server_is_avoided_and_failures_recorded(tmp_path: Path, make_comfy_server: Callable,
                                                      dead_server_url: str) -> None:
    alive = make_comfy_server()
    alive.config.fail = {"2": ("RuntimeError", "boom")}
    path = _params(tmp_path, [{"1.width": 8}, {"1.width": 9}])
    backend = ClientBackend(poll_interval=0.05, timeout=30)
    try:
        result = run_batch(WORKFLOW, path, backend, BatchOptions([alive.url, dead_server_url], tmp_path / "out"))
    finally:
        backend.close()
    assert [r.status for r in result.records] == ["execution_error", "execution_error"]
    assert all(r.server == alive.url for r in result.records)
    assert all("boom" in (r.error or "") for r in result.records)


def test_cli_batch_with_registry_id(tmp_path: Path, make_comfy_server: Callable) -> None:
    servers = [make_comfy_server(), make_comfy_server()]
    path = _params(tmp_path, [{"size": 8}, {"size": 12}, {"width": 5, "color": 255}])
    out = tmp_path / "out"
    args = ["batch", "solid-invert", "--params", str(path), "--out", str(out), "--poll-interval", "0.05"]
    for server in servers:
        args += ["--server", server.url]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 0, run.output
    assert "3 success" in run.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len(manifest["jobs"]) == 3


def test_cli_batch_reports_every_bad_line(tmp_path: Path, comfy_server: Any) -> None:
    path = _params(tmp_path, [{"size": 0}, {"size": 8}, {"colour": 1}])
    run = CliRunner().invoke(main, ["batch", "solid-invert", "--params", str(path), "--server", comfy_server.url,
                                    "--out", str(tmp_path / "out")])
    assert run.exit_code == 3, run.output
    assert "line 1:" in run.output and "line 3:" in run.output
    assert _posts(comfy_server) == 0


def test_cli_run_registry_workflow(tmp_path: Path, comfy_server: Any) -> None:
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["run", "solid-invert", "--param", "size=16", "--server", comfy_server.url,
                                    "--out", str(out), "--json", "--poll-interval", "0.05"])
    assert run.exit_code == 0, run.output
    (prompt_id,) = _prompt_ids(comfy_server)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompt_id"] == prompt_id
    assert any(o["input"] == "width" and o["value"] == 16 for o in manifest["overrides"])


def test_cli_run_bad_param_sends_nothing(comfy_server: Any) -> None:
    run = CliRunner().invoke(main, ["run", "solid-invert", "--param", "size=-1", "--param", "nope=1",
                                    "--server", comfy_server.url])
    assert run.exit_code == 3, run.output
    assert "below the minimum" in run.output and "no parameter 'nope'" in run.output
    assert _posts(comfy_server) == 0


def test_cli_list_and_show() -> None:
    listed = CliRunner().invoke(main, ["list"])
    assert listed.exit_code == 0 and "sdxl-inpaint" in listed.output
    shown = CliRunner().invoke(main, ["show", "sdxl-txt2img", "--json"])
    assert shown.exit_code == 0
    data = json.loads(shown.output)
    assert data["parameters"]["seed"]["targets"] == [{"node": "3", "input": "seed"}]
    missing = CliRunner().invoke(main, ["show", "nope"])
    assert missing.exit_code == 3 and "no registry workflow 'nope'" in missing.output
