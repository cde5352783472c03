"""The ComfyUI workflow that colours one gray still: where the still goes in, where the result comes out.

``colorize keyframes --generate WORKFLOW`` takes a registry id (``runner/workflows/registry.json``,
e.g. ``colorize-keyframe-qwen``) or a workflow file, API or web-UI format. Either way the graph must
hold exactly one ``LoadImage`` (the still is uploaded into it) and exactly one image output (an
output node fed by an ``IMAGE``: ``SaveImage``, ``PreviewImage``, ``SaveImageWebsocket``...), whose
picture is the colour result. :func:`resolve_image_workflow` checks that against the server's
``/object_info`` and says, per still, which overrides ``runner.batch`` has to apply:

* a registry entry takes its typed parameters ``image``, ``prompt`` and ``seed``;
* a file takes ``TARGET.INPUT`` overrides: the ``LoadImage`` input, every ``seed`` / ``noise_seed``
  value, and the text of the prompt that reaches a sampler's ``positive`` input.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.registry import Entry, Registry, load_registry, resolve_workflow
from runner.workflow import WorkflowError, load_workflow, to_api
from runner.workflow.spec import all_input_specs

LOAD_IMAGE = "LoadImage"
IMAGE_TYPE = "IMAGE"
SEED_INPUTS = ("seed", "noise_seed")
PROMPT_INPUTS = ("prompt", "text")
#: The sampler input whose upstream text encoder holds the prompt to replace.
POSITIVE_INPUT = "positive"


@dataclass(frozen=True)
class ImageWorkflow:
    """A checked image workflow and how to point it at one still.

    ``source`` is what :func:`runner.batch.run_batch` is given: the registry id, or the API graph
    (a file converted with the server's ``/object_info``).
    """

    name: str
    source: str | dict[str, Any]
    entry: Entry | None
    load_image: str  # node id of the LoadImage
    output: str  # node id of the image output
    prompt_target: tuple[str, str] | None = None  # files: (node id, input) of the prompt text
    seed_targets: tuple[tuple[str, str], ...] = ()  # files: every seed value

    def overrides(self, still: Path, prompt: str | None, seed: int | None) -> dict[str, Any]:
        """The params-row of one still for :func:`runner.batch.run_batch`."""
        if self.entry is not None:
            row: dict[str, Any] = {"image": str(still)}
            if prompt is not None:
                row["prompt"] = prompt
            if seed is not None:
                row["seed"] = seed
            return row
        row = {f"input:{self.load_image}.image": str(still)}
        if prompt is not None:
            node, name = self.prompt_target  # type: ignore[misc]  # checked in resolve
            row[f"{node}.{name}"] = prompt
        for node, name in self.seed_targets if seed is not None else ():
            row[f"{node}.{name}"] = seed
        return row


def _image_outputs(api: dict[str, Any], object_info: dict[str, Any]) -> list[str]:
    """Output nodes that take an IMAGE: the ones whose pictures are results."""
    found = []
    for node_id, node in api.items():
        info = object_info.get(node.get("class_type")) or {}
        if not info.get("output_node"):
            continue
        specs = all_input_specs(info, node.get("inputs"))
        if any(spec.type == IMAGE_TYPE and isinstance(node["inputs"].get(name), list)
               for name, spec in specs.items()):
            found.append(node_id)
    return sorted(found, key=lambda n: (len(n), n))


def _prompt_target(api: dict[str, Any]) -> tuple[str, str] | None:
    """The text input nearest upstream of a sampler's ``positive`` input (breadth first)."""
    for node_id in sorted(api, key=lambda n: (len(n), n)):
        link = api[node_id].get("inputs", {}).get(POSITIVE_INPUT)
        if not isinstance(link, list):
            continue
        queue, seen = deque([str(link[0])]), set()
        while queue:
            current = queue.popleft()
            if current in seen or current not in api:
                continue
            seen.add(current)
            inputs = api[current].get("inputs", {})
            for name in PROMPT_INPUTS:
                if isinstance(inputs.get(name), str):
                    return current, name
            queue.extend(str(v[0]) for v in inputs.values() if isinstance(v, list) and len(v) == 2)
    return None


def resolve_image_workflow(source: str, object_info: dict[str, Any], *, prompt: str | None = None,
                           seed: int | None = None, registry: Registry | None = None) -> ImageWorkflow:
    """Check ``source`` (registry id or file) against ``object_info``; raises :class:`WorkflowError`.

    ``prompt`` / ``seed`` are only checked for a place to go: a workflow without a prompt or seed
    input refuses ``--prompt`` / ``--seed`` rather than ignoring them.
    """
    resolved, entry = resolve_workflow(source, registry or load_registry())
    name = f"registry workflow '{entry.id}'" if entry is not None else f"workflow {source}"
    api, _ = to_api(resolved if isinstance(resolved, dict) else load_workflow(resolved), object_info)
    loaders = sorted((n for n, node in api.items() if node.get("class_type") == LOAD_IMAGE), key=lambda n: (len(n), n))
    if len(loaders) != 1:
        raise WorkflowError(f"{name} has {len(loaders)} LoadImage nodes; it needs exactly one, where the gray still goes")
    outputs = _image_outputs(api, object_info)
    if len(outputs) != 1:
        named = ", ".join(f"{n} {api[n].get('class_type')}" for n in outputs)
        listed = f" ({named})" if outputs else ""
        raise WorkflowError(f"{name} has {len(outputs)} image outputs{listed}; it needs exactly one "
                            "(e.g. a SaveImage), whose picture is the colour reference")
    if entry is not None:
        image = entry.parameters.get("image")
        if image is None or all(t.node != loaders[0] for t in image.targets):
            raise WorkflowError(f"{name} has no 'image' parameter on its LoadImage node {loaders[0]}")
        for option, value, parameter in (("--prompt", prompt, "prompt"), ("--seed", seed, "seed")):
            if value is not None and parameter not in entry.parameters:
                raise WorkflowError(f"{option}: {name} has no '{parameter}' parameter")
        return ImageWorkflow(name, entry.id, entry, loaders[0], outputs[0])
    prompt_target = _prompt_target(api)
    if prompt is not None and prompt_target is None:
        raise WorkflowError(f"--prompt: {name} has no text prompt feeding a sampler's 'positive' input")
    seeds = tuple((n, key) for n in sorted(api, key=lambda n: (len(n), n)) for key in SEED_INPUTS
                  if isinstance(api[n].get("inputs", {}).get(key), int)
                  and not isinstance(api[n]["inputs"][key], bool))
    if seed is not None and not seeds:
        raise WorkflowError(f"--seed: {name} has no 'seed' or 'noise_seed' input")
    return ImageWorkflow(name, api, None, loaders[0], outputs[0], prompt_target, seeds)
