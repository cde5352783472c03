"""Websocket messages as plain dicts: JSON text frames, and the binary image frames' headers."""

from __future__ import annotations

import json
import struct
from typing import Any


def parse_message(message: Any) -> dict[str, Any] | None:
    """A websocket message as ``{"type", "data", "prompt_id"}``; binary frames decoded to a header."""
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
        if event == 1:
            fmt = {1: "jpeg", 2: "png"}.get(second, "unknown")
            return {"type": "_preview", "data": {"format": fmt, "image": bytes(message[8:])}, "prompt_id": None}
        if event == 4 and len(message) >= 8 + second:
            try:
                meta = json.loads(bytes(message[8:8 + second]))
            except ValueError:
                return None
            image_type = str(meta.get("image_type", "image/png")).split("/")[-1]
            return {"type": "_preview", "data": {"format": image_type, "image": bytes(message[8 + second:]),
                                                 "node": meta.get("node_id")}, "prompt_id": meta.get("prompt_id")}
    # Event 3 (TEXT) is broadcast to everyone without a prompt id: not attributable, ignored.
    return None
