"""``comfy-run WORKFLOW.json`` end to end against the fake server: outputs, NDJSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fake_server import FakeComfyServer
from runner.cli import main
from runner.errors import ExitCode

DATA = Path(__file__).parent / "data"
WORKFLOW = DATA / "01_empty_invert_save.api.json"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same retry logic as in production, with millisecond backoff so fault tests stay fast."""
    import runner.cli.run
    from runner import ComfyClient, RetryPolicy

    class FastClient(ComfyClient):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("retry", RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runner.cli.run, "ComfyClient", FastClient)


def invoke(server_url: str, *args: str, env: dict[str, str] | None = None):
    runner = CliRunner()
    full_env = {"COMFYUI_API_URL": server_url, "COMFYUI_POLL_INTERVAL": "0.05", "COMFYUI_API_KEY": None, "COMFYUI_TIMEOUT": None}
    full_env.update(env or {})
    return runner.invoke(main, list(args), env=full_env, catch_exceptions=False)


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_run_saves_outputs_and_prints_their_paths(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    before = WORKFLOW.read_bytes()
    result = invoke(comfy_server.url, str(WORKFLOW), "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    saved = tmp_path / "3-image-00-invert_00001_.png"
    assert result.stdout.strip() == str(saved)
    assert saved.read_bytes() == comfy_server.files[("output", "demo", "invert_00001_.png")]
    assert "running node 3 SaveImage 'Save Image'" in result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["outputs"][0]["title"] == "Save Image"
    assert WORKFLOW.read_bytes() == before


def test_default_out_dir_is_per_prompt(comfy_server: FakeComfyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(comfy_server.url, "file", str(WORKFLOW), "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    prompt_id = comfy_server.executed_prompts[0]
    assert (tmp_path / "comfy-outputs" / prompt_id / "manifest.json").is_file()


def test_set_override_is_applied_and_recorded(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    result = invoke(comfy_server.url, str(WORKFLOW), "--out", str(tmp_path), "--set", "Save Image.filename_prefix=run/x", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "3-image-00-x_00001_.png").is_file()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["overrides"][0]["input"] == "filename_prefix"


def test_json_prints_events_then_result(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    result = invoke(comfy_server.url, str(WORKFLOW), "--json", "--out", str(tmp_path))
    assert result.exit_code == 0
    lines = ndjson(result.stdout)
    kinds = [line["event"] for line in lines]
    assert kinds[0] == "queued" and kinds[-2:] == ["finished", "result"]
    assert "node_started" in kinds
    final = lines[-1]
    assert final["state"] == "success" and final["exit_code"] == 0
    assert final["outputs"][0]["sha256"]


@pytest.mark.parametrize(
    ("setup", "code", "state"),
    [
        (lambda s: s.config.fail.update({"2": ("RuntimeError", "boom")}), ExitCode.EXECUTION, "execution_error"),
        (lambda s: s.config.fail.update({"2": ("torch.OutOfMemoryError", "CUDA out of memory")}), ExitCode.OUT_OF_MEMORY, "out_of_memory"),
    ],
)
def test_execution_failures_have_their_own_codes(comfy_server: FakeComfyServer, tmp_path: Path, setup, code, state) -> None:
    setup(comfy_server)
    result = invoke(comfy_server.url, str(WORKFLOW), "--json", "--out", str(tmp_path))
    assert result.exit_code == code
    final = ndjson(result.stdout)[-1]
    assert final["state"] == state and final["error"]["node_id"] == "2"


def test_validation_error_prints_one_line_per_problem(comfy_server: FakeComfyServer) -> None:
    def reject(prompt):
        return ({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                {"1": {"errors": [{"type": "value_bigger_than_max", "message": "Value 9 bigger than max of 8", "details": "width",
                                   "extra_info": {"input_name": "width", "received_value": 9}},
                                  {"type": "required_input_missing", "message": "Required input is missing", "details": "height",
                                   "extra_info": {"input_name": "height"}}],
                       "dependent_outputs": ["3"], "class_type": "EmptyImage"}}, [])

    comfy_server.validate_prompt = reject  # the server knows something our preflight could not
    result = invoke(comfy_server.url, str(WORKFLOW))
    assert result.exit_code == ExitCode.VALIDATION
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: the server rejected the prompt (2 problem(s))")
    assert "node 1 (EmptyImage 'Empty Image') input 'width': Value 9 bigger than max of 8 (got 9)" in lines[1]
    assert "input 'height': Required input is missing" in lines[2]
    assert "Traceback" not in result.stderr


def test_workflow_problem_exits_before_queueing(comfy_server: FakeComfyServer) -> None:
    result = invoke(comfy_server.url, str(WORKFLOW), "--set", "1.width=999999", "--set", "9.x=1")
    assert result.exit_code == ExitCode.WORKFLOW
    assert "nothing was queued" in result.stderr or "error:" in result.stderr
    assert comfy_server.posted_prompt_ids() == []


def test_timeout_exit_code(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    comfy_server.set_paused(True)
    result = invoke(comfy_server.url, str(WORKFLOW), "--timeout", "0.3", "--json", "--out", str(tmp_path))
    assert result.exit_code == ExitCode.TIMEOUT
    assert ndjson(result.stdout)[-1]["state"] == "timed_out"
    assert comfy_server.queue_snapshot() == ([], [])


def test_interrupted_elsewhere_exit_code(comfy_server: FakeComfyServer) -> None:
    comfy_server.set_paused(True)
    import threading

    import requests

    def delete_when_queued() -> None:
        comfy_server.wait_until(lambda: bool(comfy_server.queue_snapshot()[1]))
        requests.post(comfy_server.url + "/queue", json={"clear": True}, timeout=5)

    threading.Thread(target=delete_when_queued, daemon=True).start()
    result = invoke(comfy_server.url, str(WORKFLOW), "--timeout", "10")
    assert result.exit_code == ExitCode.INTERRUPTED


def test_server_down_exit_code(dead_server_url: str) -> None:
    result = invoke(dead_server_url, str(WORKFLOW), env={"COMFYUI_TIMEOUT": "5"})
    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.stderr.startswith("error: cannot reach ComfyUI at")
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_server_reply_exit_code(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/object_info", "malformed", times=-1)
    result = invoke(comfy_server.url, str(WORKFLOW))
    assert result.exit_code == ExitCode.PROTOCOL
    assert "malformed JSON" in result.stderr


def test_output_download_failure_exit_code(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    comfy_server.add_fault("/view", "status", status=404, times=-1)
    result = invoke(comfy_server.url, str(WORKFLOW), "--out", str(tmp_path))
    assert result.exit_code == ExitCode.OUTPUT


def test_no_wait_prints_the_prompt_id(comfy_server: FakeComfyServer) -> None:
    comfy_server.set_paused(True)
    result = invoke(comfy_server.url, str(WORKFLOW), "--no-wait", "--quiet")
    assert result.exit_code == 0
    assert comfy_server.queue_snapshot()[1] == [result.stdout.strip()]


def test_token_from_env_is_used_and_never_printed(make_comfy_server, tmp_path: Path) -> None:
    from fake_server import FakeConfig

    server = make_comfy_server(FakeConfig(require_token="tok-123456"))
    result = invoke(server.url, str(WORKFLOW), "--json", "--out", str(tmp_path), env={"COMFYUI_API_KEY": "tok-123456"})
    assert result.exit_code == 0
    assert "tok-123456" not in result.stdout + result.stderr
    assert "tok-123456" not in (tmp_path / "manifest.json").read_text()
    bad = invoke(server.url, str(WORKFLOW), "--token", "nope-987")
    assert bad.exit_code == ExitCode.PROTOCOL and "nope-987" not in bad.stdout + bad.stderr


def test_help_documents_exit_codes() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for code in ExitCode:
        assert f" {int(code)}  " in result.stdout
    file_help = CliRunner().invoke(main, ["file", "--help"])
    assert "COMFYUI_API_URL" in file_help.stdout and "Exit codes" in file_help.stdout


def test_missing_workflow_file_is_a_usage_error(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    result = invoke(comfy_server.url, str(tmp_path / "nope.json"))
    assert result.exit_code == ExitCode.USAGE
