"""Exception taxonomy of comfy-run and the process exit code that belongs to each finish state.

Every error the runner raises derives from :class:`ComfyRunError`; each subclass carries its own
``exit_code`` so the command line can map a failure to a documented code without a lookup table
scattered through the code. The table is printed in ``comfy-run --help`` and the README.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``comfy-run``; one per finish state."""

    SUCCESS = 0
    ERROR = 1  # unexpected failure not covered below
    USAGE = 2  # bad command-line usage (click's own code)
    WORKFLOW = 3  # workflow file / override / preflight problem found before queueing
    VALIDATION = 4  # the server rejected the prompt (400 with node_errors)
    EXECUTION = 5  # a node raised while the prompt ran
    OUT_OF_MEMORY = 6  # a node ran out of GPU (or CPU) memory
    INTERRUPTED = 7  # the prompt was interrupted on the server (not by our Ctrl-C)
    TIMEOUT = 8  # --timeout deadline passed; our prompt was cancelled
    UNREACHABLE = 9  # the server could not be reached (after retries)
    PROTOCOL = 10  # the server answered something we cannot understand (malformed JSON, 5xx ...)
    OUTPUT = 11  # the prompt succeeded but an output could not be downloaded or written
    CANCELLED = 130  # Ctrl-C: our prompt was cancelled


EXIT_CODE_DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "success: the prompt ran and every output was downloaded",
    ExitCode.ERROR: "unexpected error",
    ExitCode.USAGE: "bad command-line usage",
    ExitCode.WORKFLOW: "workflow, override or preflight problem (nothing was queued)",
    ExitCode.VALIDATION: "the server rejected the prompt (validation error, nothing was queued)",
    ExitCode.EXECUTION: "a node failed while running (execution error)",
    ExitCode.OUT_OF_MEMORY: "a node ran out of memory",
    ExitCode.INTERRUPTED: "the prompt was interrupted on the server",
    ExitCode.TIMEOUT: "--timeout passed; the prompt was cancelled",
    ExitCode.UNREACHABLE: "the server could not be reached",
    ExitCode.PROTOCOL: "the server sent a reply that could not be understood",
    ExitCode.OUTPUT: "an output could not be downloaded or written",
    ExitCode.CANCELLED: "cancelled with Ctrl-C; the prompt was cancelled",
}


class ComfyRunError(Exception):
    """Base class of every runner error; ``exit_code`` is the process exit code for it."""

    exit_code: int = ExitCode.ERROR


class ServerUnreachableError(ComfyRunError):
    """The server refused or dropped the connection, or timed out, even after retries."""

    exit_code = ExitCode.UNREACHABLE


class ProtocolError(ComfyRunError):
    """The server answered with a status or body the client cannot use (5xx, malformed JSON...)."""

    exit_code = ExitCode.PROTOCOL

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PromptValidationError(ComfyRunError):
    """``POST /prompt`` answered 400: nothing was queued. ``lines`` has one line per problem."""

    exit_code = ExitCode.VALIDATION

    def __init__(self, message: str, lines: list[str] | None = None, payload: dict | None = None) -> None:
        super().__init__(message)
        self.lines = lines or []
        self.payload = payload or {}


class ExecutionError(ComfyRunError):
    """A node raised while the prompt ran."""

    exit_code = ExitCode.EXECUTION

    def __init__(
        self,
        message: str,
        node_id: str | None = None,
        node_type: str | None = None,
        exception_type: str | None = None,
        exception_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message


class OutOfMemoryError(ExecutionError):
    """An execution error recognised as running out of (GPU) memory."""

    exit_code = ExitCode.OUT_OF_MEMORY


class PromptInterruptedError(ComfyRunError):
    """The prompt was interrupted on the server (by someone else, or by us on cancel)."""

    exit_code = ExitCode.INTERRUPTED


class RunTimeoutError(ComfyRunError):
    """The wall-clock deadline passed before the prompt finished."""

    exit_code = ExitCode.TIMEOUT


class CancelledByUserError(ComfyRunError):
    """The user pressed Ctrl-C; our prompt was cancelled."""

    exit_code = ExitCode.CANCELLED


class OutputError(ComfyRunError):
    """An output could not be downloaded or written to disk."""

    exit_code = ExitCode.OUTPUT
