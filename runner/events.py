"""Typed events of one prompt's life, as seen by :class:`runner.ComfyClient`.

The server's websocket messages (and, when the socket fails, what polling ``/history`` finds) are
turned into these small dataclasses. Each has ``kind`` and :meth:`Event.to_json` so the CLI can
print them as NDJSON; a bot can ``isinstance``-match them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class FinishState(str, Enum):
    """How a run ended. Each state has its own exit code (see :mod:`runner.errors`)."""

    SUCCESS = "success"
    VALIDATION_ERROR = "validation_error"
    EXECUTION_ERROR = "execution_error"
    OUT_OF_MEMORY = "out_of_memory"
    INTERRUPTED = "interrupted"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"


@dataclass
class Event:
    """Base of all events; ``prompt_id`` is the prompt it belongs to, ``at`` a wall-clock stamp."""

    prompt_id: str
    at: float = field(default_factory=time.time, init=False)
    kind = "event"

    def to_json(self) -> dict[str, Any]:
        data = {"event": self.kind}
        data.update(asdict(self))
        return data


@dataclass
class Queued(Event):
    """``POST /prompt`` accepted the prompt (``number`` is its queue position key)."""

    number: float | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)
    kind = "queued"


@dataclass
class Started(Event):
    kind = "started"


@dataclass
class Cached(Event):
    """Nodes whose results the server took from its cache (they will not be executed)."""

    nodes: list[str] = field(default_factory=list)
    kind = "cached"


@dataclass
class NodeStarted(Event):
    node_id: str = ""
    class_type: str | None = None
    title: str | None = None
    kind = "node_started"


@dataclass
class Progress(Event):
    """Step ``value`` of ``max`` inside a node (advisory: steps may be skipped)."""

    node_id: str = ""
    class_type: str | None = None
    title: str | None = None
    value: float = 0
    max: float = 0
    kind = "progress"


@dataclass
class NodeExecuted(Event):
    """A node produced UI output (``output`` as in history: images, audio, text...)."""

    node_id: str = ""
    class_type: str | None = None
    title: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    kind = "node_executed"


@dataclass
class Preview(Event):
    """A sampler preview: a binary image frame sent while a node that is not an output node runs.
    Not an output; the command line saves previews only with ``--save-previews``."""

    node_id: str | None = None
    image_format: str = "png"
    size: int = 0
    kind = "preview"

    def __post_init__(self) -> None:
        self.data: bytes = b""  # the image bytes; kept out of to_json()


@dataclass
class ImageOutput(Event):
    """An output image sent as a binary websocket frame by an output node (``SaveImageWebsocket``).

    The server stores it nowhere and history does not list it, so this frame is the only copy:
    the client keeps it in ``RunResult.images`` and ``collect_outputs`` saves it with the other
    outputs. ``index`` counts the node's images in the order they arrived.
    """

    node_id: str | None = None
    class_type: str | None = None
    title: str | None = None
    index: int = 0
    image_format: str = "png"
    size: int = 0
    kind = "image_output"

    def __post_init__(self) -> None:
        self.data: bytes = b""  # the image bytes; kept out of to_json()


@dataclass
class ConnectionNote(Event):
    """The websocket state changed: ``lost``, ``reconnected``, ``unavailable`` (polling instead)."""

    state: str = ""
    detail: str = ""
    kind = "connection"


@dataclass
class Finished(Event):
    """The prompt ended; ``state`` says how. ``result`` is the :class:`runner.client.RunResult`."""

    state: FinishState = FinishState.SUCCESS
    message: str = ""
    kind = "finished"

    def __post_init__(self) -> None:
        self.result: Any = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["state"] = self.state.value
        return data
