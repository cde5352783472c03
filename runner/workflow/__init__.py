"""Workflows: loading a file, converting web-UI saves to API format, applying overrides, checking inputs.

Modules, each one job (imports run downwards):

* :mod:`~runner.workflow.prepare` - ``--set``/``--input`` overrides and the preflight check;
  :func:`prepare_workflow` is the seam the command line and the batch runner use;
* :mod:`~runner.workflow.load` - reading a file and bringing it to API format;
* :mod:`~runner.workflow.convert` - web-UI save -> API format (positional widgets, links, subgraphs);
* :mod:`~runner.workflow.spec` - ``/object_info`` input specs and value checks;
* :mod:`~runner.workflow.errors` - :class:`WorkflowError`, which lists every problem found.
"""

from __future__ import annotations

from runner.workflow.convert import ui_to_api
from runner.workflow.errors import WorkflowError
from runner.workflow.load import FORMAT_API, FORMAT_UI, detect_format, load_workflow, node_titles, to_api
from runner.workflow.prepare import (
    MODEL_FILE_SUFFIXES,
    MODEL_INPUT_FOLDERS,
    PreparedWorkflow,
    parse_assignment,
    parse_value,
    preflight,
    prepare_workflow,
    resolve_target,
)
from runner.workflow.spec import InputSpec, all_input_specs, check_value

__all__ = [
    "FORMAT_API",
    "FORMAT_UI",
    "InputSpec",
    "MODEL_FILE_SUFFIXES",
    "MODEL_INPUT_FOLDERS",
    "PreparedWorkflow",
    "WorkflowError",
    "all_input_specs",
    "check_value",
    "detect_format",
    "load_workflow",
    "node_titles",
    "parse_assignment",
    "parse_value",
    "preflight",
    "prepare_workflow",
    "resolve_target",
    "to_api",
    "ui_to_api",
]
