"""Saving sampler previews as they arrive (``comfy-run --save-previews``).

Previews are the images a sampler sends over the websocket while it runs. They are not outputs, so
they are kept only when asked for: each one is written when its event arrives (nothing piles up in
memory over a long run) to ``<out>/previews/<node>-preview-<index>.<ext>``, numbered per node in
arrival order, and recorded for the manifest's ``previews`` list.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from runner.events import Event, Preview

log = logging.getLogger(__name__)

PREVIEW_DIR = "previews"
_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp"}


class PreviewSaver:
    """Call it with every event of a run; it writes the :class:`Preview` ones under ``out_dir/previews``."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / PREVIEW_DIR
        self.records: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self.failed = False

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Preview):
            return
        node = str(event.node_id) if event.node_id is not None else "unknown"
        index = self._counts[node]
        self._counts[node] += 1
        ext = _EXTENSIONS.get(event.image_format, "bin")
        name = f"{re.sub(r'[^A-Za-z0-9._-]+', '_', node)}-preview-{index:03d}.{ext}"
        target = self.folder / name
        partial = target.with_name(f".{name}.part")
        if self.failed:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(event.data)
            os.replace(partial, target)
        except OSError as exc:
            # Previews are extras: the run goes on (and is not left running unwatched on the server).
            partial.unlink(missing_ok=True)
            self.failed = True
            log.warning("cannot write preview %s (%s); no more previews are saved", target, exc.strerror or exc)
            return
        self.records.append({"node_id": node, "index": index, "path": f"{PREVIEW_DIR}/{name}",
                             "size": len(event.data), "sha256": hashlib.sha256(event.data).hexdigest()})
