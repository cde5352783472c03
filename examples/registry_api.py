"""A web backend over the workflow registry and ``runner.AsyncComfyClient``, as a FastAPI app.

A frontend lists the workflows, builds a form for one from its JSON Schema (any JSON-Schema form
library does), and posts the values; one endpoint generates with any workflow:

* ``GET /api/v1/workflows``: id, title, category, description and parameter names of each;
* ``GET /api/v1/workflows/{id}``: the same, with ``schema``, its parameters as a JSON Schema
  (draft 2020-12: types, limits, choices, defaults, descriptions, which parameters are files);
* ``POST /api/v1/generate`` ``{"workflow": ID, "params": {...}}``: checks the parameters and the
  graph against the server, queues the prompt and answers 202 with the job id. Invalid
  parameters get 422 with the messages ``comfy-run run`` prints, one per problem;
* ``GET /api/v1/jobs/{id}``: state (``queued``, ``running``, ``done``, ``failed``,
  ``cancelled``), progress, and the URLs of the outputs once it is done;
* ``GET /api/v1/jobs/{id}/outputs/{n}``: an output file;
* ``DELETE /api/v1/jobs/{id}``: cancels the job (only its own prompt on the server).

Serve it with uvicorn::

    python examples/registry_api.py --server http://127.0.0.1:8188 --port 8000

Jobs are kept in memory, so they are lost when the process ends; a service that must not lose
them keeps them in a store of its own (``bot_worker.py`` shows a persistent queue).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import InvalidParameters, build_workflow  # noqa: E402

from runner import AsyncComfyClient  # noqa: E402
from runner.errors import ComfyRunError, PromptValidationError, ServerUnreachableError  # noqa: E402
from runner.events import Event, NodeStarted, Progress  # noqa: E402
from runner.registry import Entry, Registry, load_registry  # noqa: E402
from runner.workflow.errors import WorkflowError  # noqa: E402

API = "/api/v1"


class GenerateRequest(BaseModel):
    workflow: str = Field(description="a registry workflow id")
    params: dict[str, Any] = Field(default_factory=dict, description="parameter values, as its JSON Schema says")
    timeout: float | None = Field(default=None, gt=0, description="seconds the run may take")


@dataclass
class GenerationJob:
    id: str
    workflow: str
    prompt_id: str
    state: str = "queued"
    progress: dict[str, Any] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    task: asyncio.Task | None = None

    def view(self) -> dict[str, Any]:
        return {
            "job_id": self.id, "workflow": self.workflow, "prompt_id": self.prompt_id,
            "state": self.state, "progress": self.progress, "error": self.error,
            "outputs": [{"filename": path.name, "url": f"{API}/jobs/{self.id}/outputs/{index}"}
                        for index, path in enumerate(self.outputs)],
        }


def _summary(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "title": entry.title, "category": entry.category,
            "description": entry.description, "parameters": sorted(entry.parameters)}


def create_app(server: str, *, token: str | None = None, registry: Registry | None = None,
               out_dir: str | Path | None = None) -> FastAPI:
    """The app for one ComfyUI ``server``; outputs are kept under ``out_dir`` (a temporary folder)."""
    registry = registry or load_registry()
    jobs: dict[str, GenerationJob] = {}
    outputs_root = Path(out_dir or tempfile.mkdtemp(prefix="registry-api-"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncComfyClient(server, token=token) as client:
            app.state.client = client
            yield
            for job in jobs.values():
                if job.task is not None and not job.task.done():
                    job.task.cancel()  # a process that stops takes its prompts off the server

    app = FastAPI(title="ComfyUI workflow registry", lifespan=lifespan)

    def find_entry(workflow_id: str) -> Entry:
        try:
            return registry.get(workflow_id)
        except WorkflowError as error:
            raise HTTPException(status_code=404, detail=error.problems) from None

    def find_job(job_id: str) -> GenerationJob:
        if job_id not in jobs:
            raise HTTPException(status_code=404, detail=[f"no job {job_id}"])
        return jobs[job_id]

    @app.get(f"{API}/workflows")
    async def list_workflows() -> dict[str, Any]:
        return {"workflows": [_summary(entry) for entry in registry.entries.values()]}

    @app.get(f"{API}/workflows/{{workflow_id}}")
    async def show_workflow(workflow_id: str) -> dict[str, Any]:
        entry = find_entry(workflow_id)
        return {**_summary(entry), "schema": entry.json_schema()}

    @app.post(f"{API}/generate", status_code=202)
    async def generate(body: GenerateRequest, request: Request) -> Any:
        find_entry(body.workflow)
        client: AsyncComfyClient = request.app.state.client
        try:
            workflow = await build_workflow(client, registry, body.workflow, body.params)
            submitted = await client.submit(workflow)
        except InvalidParameters as error:
            return JSONResponse(status_code=422, content={"detail": error.problems})
        except PromptValidationError as error:
            return JSONResponse(status_code=422, content={"detail": error.lines or [str(error)]})
        except ServerUnreachableError as error:
            return JSONResponse(status_code=503, content={"detail": [str(error)]})
        except ComfyRunError as error:
            return JSONResponse(status_code=502, content={"detail": [str(error)]})
        job = GenerationJob(uuid.uuid4().hex[:12], body.workflow, submitted.prompt_id)
        jobs[job.id] = job
        job.task = asyncio.create_task(_follow(client, job, workflow, body.timeout, outputs_root))
        return {"job_id": job.id, "state": job.state, "url": f"{API}/jobs/{job.id}"}

    @app.get(f"{API}/jobs/{{job_id}}")
    async def job_status(job_id: str) -> dict[str, Any]:
        return find_job(job_id).view()

    @app.get(f"{API}/jobs/{{job_id}}/outputs/{{index}}")
    async def job_output(job_id: str, index: int) -> FileResponse:
        job = find_job(job_id)
        if not 0 <= index < len(job.outputs):
            raise HTTPException(status_code=404, detail=[f"job {job_id} has no output {index}"])
        return FileResponse(job.outputs[index])

    @app.delete(f"{API}/jobs/{{job_id}}")
    async def cancel_job(job_id: str) -> Any:
        job = find_job(job_id)
        if job.state in ("done", "failed", "cancelled"):
            return JSONResponse(status_code=409, content={"detail": [f"job {job_id} has ended ({job.state})"]})
        assert job.task is not None
        job.task.cancel()  # the client cancels our prompt on the server (and only ours)
        await asyncio.gather(job.task, return_exceptions=True)
        return job.view()

    return app


async def _follow(client: AsyncComfyClient, job: GenerationJob, workflow: dict[str, Any],
                  timeout: float | None, outputs_root: Path) -> None:
    """Wait for the job's prompt, keeping its state and progress, and fetch its outputs."""

    def on_event(event: Event) -> None:
        if isinstance(event, NodeStarted):
            job.state = "running"
            job.progress = {"node": event.node_id, "class_type": event.class_type}
        elif isinstance(event, Progress):
            job.progress = {"node": event.node_id, "class_type": event.class_type,
                            "value": event.value, "max": event.max}

    try:
        result = await client.wait(job.prompt_id, timeout=timeout, on_event=on_event, workflow=workflow)
        if not result.ok:
            job.state, job.error = "failed", result.message or result.state.value
            return
        manifest = await client.download_outputs(result, outputs_root / job.id)
        job.outputs = [outputs_root / job.id / item["path"] for item in manifest.outputs]
        job.state = "done"
    except asyncio.CancelledError:
        job.state = "cancelled"
        raise
    except ComfyRunError as error:
        job.state, job.error = "failed", str(error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the workflow registry over HTTP.")
    parser.add_argument("--server", default=os.environ.get("COMFYUI_API_URL", "http://127.0.0.1:8188"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--out", default=None, help="folder for the outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    app = create_app(args.server, token=os.environ.get("COMFYUI_API_KEY"), out_dir=args.out)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
