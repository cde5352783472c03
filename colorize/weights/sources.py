"""Download sources: ``http(s)://`` URLs and ``hf://owner/repo[@revision]/path/in/repo``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlparse

from colorize.weights.catalog import CHECKPOINT_FILENAME
from colorize.weights.errors import WeightsSourceError
from colorize.weights.locations import CHECKPOINT_SUFFIXES



def hugging_face_endpoint() -> str:
    """The hub's base URL: ``HF_ENDPOINT`` (a mirror or a private hub) or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or "https://huggingface.co"


@dataclass(frozen=True)
class Source:
    """One place the checkpoint can be fetched from."""

    text: str  # as the user wrote it; used in messages and the manifest
    url: str = ""  # for http(s) sources
    repo_id: str = ""  # for hf:// sources
    path_in_repo: str = ""
    revision: str | None = None

    @property
    def is_hugging_face(self) -> bool:
        return bool(self.repo_id)

    @property
    def filename(self) -> str:
        """Name the downloaded file gets: the source's own name when it looks like a checkpoint."""
        raw = self.path_in_repo if self.is_hugging_face else unquote(urlparse(self.url).path)
        name = raw.rstrip("/").rsplit("/", 1)[-1]
        return name if name.endswith(CHECKPOINT_SUFFIXES) else CHECKPOINT_FILENAME

    @property
    def host(self) -> str:
        """The server's name, which is what a network failure is about."""
        url = hugging_face_endpoint() if self.is_hugging_face else self.url
        return urlparse(url).hostname or url

    @property
    def browser_url(self) -> str:
        """A URL a person can open to fetch the file by hand."""
        if not self.is_hugging_face:
            return self.url
        revision = quote(self.revision or "main", safe="")
        base = hugging_face_endpoint()
        return f"{base}/{self.repo_id}/resolve/{revision}/{self.path_in_repo}"


def parse_source(text: str) -> Source:
    """Turn ``https://...`` or ``hf://owner/repo[@rev]/file`` into a :class:`Source`."""
    text = text.strip()
    if text.startswith("hf://"):
        parts = text[len("hf://"):].split("/")
        if len(parts) < 3 or not all(parts):
            raise WeightsSourceError(
                f"malformed source {text!r}: write hf://OWNER/REPO/PATH/IN/REPO "
                "(optionally hf://OWNER/REPO@REVISION/PATH)"
            )
        repo_name, _, revision = parts[1].partition("@")
        return Source(
            text=text,
            repo_id=f"{parts[0]}/{repo_name}",
            path_in_repo="/".join(parts[2:]),
            revision=revision or None,
        )
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return Source(text=text, url=text)
    raise WeightsSourceError(
        f"unsupported source {text!r}: give an http(s):// URL or hf://OWNER/REPO/FILE"
    )
