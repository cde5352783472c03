"""The runner package's layout: imports between its modules run one way, and the public names stay put."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import runner

ROOT = Path(runner.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the runner modules it imports (anywhere in the file, function-level imports too)."""
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from runner.pkg import sub" imports the submodule; a plain name comes from pkg/__init__.
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def test_runner_modules_import_each_other_one_way() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [module, target] if target in path else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("module, names", [
    ("runner", ["ComfyClient", "ComfyRunError", "Deadline", "ExitCode", "FinishState", "RetryPolicy", "RunResult"]),
    ("runner.client", ["ComfyClient", "RunResult", "SubmitResult", "normalise_server", "websocket_url",
                       "validation_lines", "describe_execution_error", "is_out_of_memory"]),
    ("runner.cli", ["main", "execute", "RunOptions", "run_options"]),
    ("runner.workflow", ["PreparedWorkflow", "WorkflowError", "load_workflow", "prepare_workflow", "to_api",
                         "ui_to_api", "all_input_specs", "parse_value", "preflight"]),
])
def test_public_names_are_where_they_were(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert [name for name in names if not hasattr(loaded, name)] == []
