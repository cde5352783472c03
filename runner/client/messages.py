"""Websocket messages as plain dicts: JSON text frames, and the binary image frames' headers.

Binary frames start with a 4-byte big-endian event type (ComfyUI 0.33, recorded in transcript 08):

* 1, image: a 4-byte image format (1 JPEG, 2 PNG), then the image. No node or prompt id: the image
  belongs to the node that is executing on our socket when it arrives.
* 4, image with metadata (only after the ``feature_flags`` negotiation, which the client does):
  a 4-byte length L, L bytes of JSON ``{node_id, prompt_id, image_type, ...}``, then the image.
* 3, text: broadcast to every socket without a prompt id, so not attributable; ignored.

Both image events carry sampler previews and the images of ``SaveImageWebsocket``; which one a
frame is depends on the node it belongs to (see :class:`runner.client.tracker.RunTracker`).
"""

from __future__ import annotations

import json
import struct
from typing import Any

IMAGE = "_image"  # the message type given to binary image frames
EVENT_IMAGE = 1
EVENT_TEXT = 3
EVENT_IMAGE_WITH_METADATA = 4
_FORMAT_CODES = {1: "jpeg", 2: "png"}

# Sent as the first frame on every socket: asks for event 4 (node and prompt id on each image).
FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})


def parse_message(message: Any) -> dict[str, Any] | None:
    """A websocket message as ``{"type", "data", "prompt_id"}``; binary frames decoded to a header.

    Image frames become ``{"type": "_image", "data": {"event", "format", "image", "node"}}``; ``node``
    is None for event 1 frames, which name no node.
    """
    if isinstance(message, str):
        try:
            parsed = json.loads(message)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        data = parsed.get("data") if isinstance(parsed.get("data"), dict) else {}
        return {"type": parsed.get("type"), "data": data, "prompt_id": data.get("prompt_id")}
    if isinstance(message, (bytes, bytearray)) and len(message) >= 8:
        event, second = struct.unpack(">II", bytes(message[:8]))
        if event == EVENT_IMAGE:
            return {"type": IMAGE, "data": {"event": event, "format": _FORMAT_CODES.get(second, "unknown"),
                                            "image": bytes(message[8:]), "node": None}, "prompt_id": None}
        if event == EVENT_IMAGE_WITH_METADATA and len(message) >= 8 + second:
            try:
                meta = json.loads(bytes(message[8:8 + second]))
            except ValueError:
                return None
            if not isinstance(meta, dict):
                return None
            image_type = str(meta.get("image_type", "image/png")).split("/")[-1]
            node = meta.get("node_id")
            return {"type": IMAGE, "data": {"event": event, "format": image_type, "image": bytes(message[8 + second:]),
                                            "node": None if node is None else str(node)},
                    "prompt_id": meta.get("prompt_id")}
    return None
