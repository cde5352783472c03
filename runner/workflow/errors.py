"""The error raised for any workflow, override or preflight problem found before queueing."""

from __future__ import annotations

from runner.errors import ComfyRunError, ExitCode


class WorkflowError(ComfyRunError):
    """One or more problems with a workflow file, its overrides or the server's capabilities.

    Nothing has been queued when this is raised. ``problems`` holds one human sentence per
    problem, so the command line can print them all at once, one per line.
    """

    exit_code = ExitCode.WORKFLOW

    def __init__(self, problems: list[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self._format())

    def _format(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        lines = [f"{len(self.problems)} problems found (nothing was queued):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def lines(self) -> list[str]:
        """One line per problem, for printing or for a JSON report."""
        return list(self.problems)
