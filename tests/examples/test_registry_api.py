"""examples/registry_api.py through FastAPI's test client, against the ComfyUI stand-in: the
workflows and their JSON Schemas, a generation round trip, a 422 in the command line's words,
and a cancel that takes only that job's prompt off the server."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from registry_api import create_app

from runner.cli import main as comfy_run


def _until(client: TestClient, job_id: str, states: set[str], timeout: float = 30.0) -> dict:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not reach {states}: {job}")


@pytest.fixture
def api(comfy_server, tmp_path):
    with TestClient(create_app(comfy_server.url, out_dir=tmp_path / "outputs")) as client:
        yield client


def test_workflows_are_listed_with_their_json_schema(api):
    listed = api.get("/api/v1/workflows").json()["workflows"]
    assert "solid-invert" in [workflow["id"] for workflow in listed]
    shown = api.get("/api/v1/workflows/solid-invert").json()
    schema = shown["schema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["size"]["type"] == "integer"
    assert schema["properties"]["size"]["minimum"] == 1
    missing = api.get("/api/v1/workflows/no-such-flow")
    assert missing.status_code == 404 and "no registry workflow 'no-such-flow'" in missing.json()["detail"][0]


def test_a_generation_round_trips_to_its_output(api, comfy_server):
    answer = api.post("/api/v1/generate", json={"workflow": "solid-invert", "params": {"size": 32}})
    assert answer.status_code == 202, answer.text
    job = _until(api, answer.json()["job_id"], {"done", "failed"})
    assert job["state"] == "done", job
    assert job["prompt_id"] in comfy_server.history
    [output] = job["outputs"]
    image = api.get(output["url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    posted = comfy_server.history[job["prompt_id"]]["prompt"][2]
    assert posted["1"]["inputs"]["width"] == 32 and posted["1"]["inputs"]["height"] == 32


def test_invalid_parameters_get_422_with_the_command_lines_messages(api, comfy_server):
    answer = api.post("/api/v1/generate", json={"workflow": "solid-invert",
                                                 "params": {"size": 0, "colour": 3}})
    assert answer.status_code == 422
    problems = answer.json()["detail"]
    cli = CliRunner().invoke(comfy_run, ["run", "solid-invert", "--param", "size=0", "--param", "colour=3",
                                         "--server", comfy_server.url])
    assert cli.exit_code == 3
    assert len(problems) == 2 and all(problem in cli.output for problem in problems)
    assert "--param size: 0 is below the minimum 1" in problems
    assert comfy_server.posted_prompt_ids() == []   # nothing was queued


def test_delete_cancels_only_that_jobs_prompt(api, comfy_server):
    comfy_server.set_paused(True)        # prompts wait in the server's queue
    first = api.post("/api/v1/generate", json={"workflow": "solid-invert", "params": {"size": 8}}).json()
    second = api.post("/api/v1/generate", json={"workflow": "solid-invert", "params": {"size": 9}}).json()
    first_prompt = api.get(first["url"]).json()["prompt_id"]
    second_prompt = api.get(second["url"]).json()["prompt_id"]
    assert comfy_server.wait_until(lambda: len(comfy_server.queue_snapshot()[1]) == 2)

    cancelled = api.delete(first["url"])
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert comfy_server.wait_until(lambda: comfy_server.queue_snapshot()[1] == [second_prompt])
    assert first_prompt not in comfy_server.history

    comfy_server.set_paused(False)
    assert _until(api, second["job_id"], {"done", "failed"})["state"] == "done"
    again = api.delete(first["url"])
    assert again.status_code == 409
