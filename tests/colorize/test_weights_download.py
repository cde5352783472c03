"""Downloading the checkpoint from a loopback server: progress, resume, checksums, mirrors,
and failures as a user meets them (short files, no network, refused, transient errors)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path

import pytest
import torch

from colorize.weights import (
    ArchitectureMismatchError,
    CheckpointUnreadableError,
    ChecksumMismatchError,
    WeightsDownloadError,
    WeightsSourceError,
)
from colorize.weights import transfer
from colorize.weights.download import DownloadOptions, download_checkpoint, parse_source
from colorize.weights.locations import checkpoints_in
from colorize.weights.manifest import MANIFEST_NAME

try:
    from .weights_fixtures import checkpoint_server, isolated_weights, small_checkpoint_bytes
except ImportError:
    from weights_fixtures import checkpoint_server, isolated_weights, small_checkpoint_bytes

__all__ = ["checkpoint_server", "isolated_weights"]  # fixtures used by name

NAME = "DINOv2FeatureV6_LocalAtten_s2_154000.pth"
FAST = dict(chunk_size=4096, retry_delay_s=0.0, connect_timeout_s=5, read_timeout_s=5)


@pytest.fixture
def payload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data = small_checkpoint_bytes(tmp_path_factory.mktemp("payload"))
    assert len(data) > 8 * 4096  # several chunks, so progress and cuts happen mid-file
    return data


def test_download_writes_the_file_shows_progress_and_records_sha256(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/v0.1/" + NAME] = payload
    progress = io.StringIO()
    folder = tmp_path / "weights"

    path = download_checkpoint(
        [checkpoint_server.url("/v0.1/" + NAME)],
        folder,
        DownloadOptions(progress_stream=progress, **FAST),
    )

    assert path == folder / NAME
    assert path.read_bytes() == payload
    assert not (folder / (NAME + ".part")).exists()
    lines = progress.getvalue().splitlines()
    assert lines and "100%" in lines[-1]  # a plain line every few seconds, and the final one
    assert f"{len(payload) / 1e6:.1f} MB" in lines[-1]
    record = json.loads((folder / MANIFEST_NAME).read_text())["files"][NAME]
    assert record["sha256"] == hashlib.sha256(payload).hexdigest()
    assert record["size"] == len(payload)
    assert record["source"] == checkpoint_server.url("/v0.1/" + NAME)


def test_quiet_download_prints_nothing(tmp_path, checkpoint_server, payload, isolated_weights):
    checkpoint_server.files["/f.pth"] = payload
    progress = io.StringIO()
    options = DownloadOptions(progress=False, progress_stream=progress, **FAST)
    download_checkpoint([checkpoint_server.url("/f.pth")], tmp_path, options)
    assert progress.getvalue() == ""


def test_connection_cut_midway_is_resumed_with_a_range_request(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    cut_at = len(payload) // 3
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.cut_first_request_after["/" + NAME] = cut_at

    path = download_checkpoint(
        [checkpoint_server.url("/" + NAME)],
        tmp_path,
        DownloadOptions(progress=False, **FAST),
    )

    assert path.read_bytes() == payload
    first, second = checkpoint_server.requests_for("/" + NAME)
    assert first is None
    # The client keeps whole chunks that arrived before the cut, and asks for the rest.
    resumed_from = int(second.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= cut_at


def test_interrupted_download_leaves_only_a_part_file_that_the_next_run_resumes(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    cut_at = len(payload) // 2
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.cut_first_request_after["/" + NAME] = cut_at
    no_retry = DownloadOptions(progress=False, resume_attempts=0, **FAST)

    with pytest.raises(WeightsDownloadError, match="connection.*next attempt resumes it"):
        download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, no_retry)
    assert not (tmp_path / NAME).exists()
    partial = (tmp_path / (NAME + ".part")).read_bytes()
    assert 0 < len(partial) <= cut_at and partial == payload[: len(partial)]

    path = download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, no_retry)
    assert path.read_bytes() == payload
    assert checkpoint_server.requests_for("/" + NAME)[-1] == f"bytes={len(partial)}-"


def test_server_ignoring_range_restarts_from_zero(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.honour_range = False
    (tmp_path / (NAME + ".part")).write_bytes(b"stale bytes from another file")

    path = download_checkpoint(
        [checkpoint_server.url("/" + NAME)], tmp_path, DownloadOptions(progress=False, **FAST)
    )
    assert path.read_bytes() == payload


def test_checksum_mismatch_is_refused_and_the_partial_file_removed(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    wrong = "0" * 64
    options = DownloadOptions(progress=False, expected_sha256=wrong, **FAST)

    with pytest.raises(ChecksumMismatchError) as caught:
        download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)

    message = str(caught.value)
    assert hashlib.sha256(payload).hexdigest() in message and wrong in message
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != MANIFEST_NAME) == []


def test_a_later_download_is_checked_against_the_first_recorded_sha256(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    options = DownloadOptions(progress=False, **FAST)
    first = download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)
    first.unlink()
    checkpoint_server.files["/" + NAME] = payload[:-10] + b"tampered!!"

    recorded = hashlib.sha256(payload).hexdigest()
    with pytest.raises(ChecksumMismatchError, match="expected " + recorded):
        download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)
    assert not (tmp_path / NAME).exists()
    assert not (tmp_path / (NAME + ".part")).exists()


def test_mirror_is_used_after_a_404(tmp_path, checkpoint_server, payload, isolated_weights):
    checkpoint_server.files["/mirror/" + NAME] = payload
    sources = [checkpoint_server.url("/gone/" + NAME), checkpoint_server.url("/mirror/" + NAME)]

    path = download_checkpoint(sources, tmp_path, DownloadOptions(progress=False, **FAST))

    assert path.read_bytes() == payload
    assert [p for p, _ in checkpoint_server.requests] == ["/gone/" + NAME, "/mirror/" + NAME]


def test_all_sources_failing_names_each_one(tmp_path, checkpoint_server, isolated_weights):
    sources = [checkpoint_server.url("/a/" + NAME), checkpoint_server.url("/b/" + NAME)]
    with pytest.raises(WeightsDownloadError) as caught:
        download_checkpoint(sources, tmp_path, DownloadOptions(progress=False, **FAST))
    message = str(caught.value)
    assert sources[0] in message and sources[1] in message and "HTTP 404" in message
    assert list(tmp_path.iterdir()) == []


def test_an_existing_verified_file_is_not_downloaded_again(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    options = DownloadOptions(progress=False, **FAST)
    download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)
    download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)
    assert len(checkpoint_server.requests) == 1


def test_sources_are_parsed_or_refused():
    hf = parse_source("hf://someone/colormnet@v1/weights/" + NAME)
    assert (hf.repo_id, hf.revision, hf.path_in_repo, hf.filename) == (
        "someone/colormnet", "v1", "weights/" + NAME, NAME,
    )
    plain = parse_source("https://example.org/download?id=3")
    assert plain.url and plain.filename == NAME  # a name that is not a checkpoint falls back
    for bad in ("ftp://host/file.pth", "hf://only-owner/file.pth", "weights.pth"):
        with pytest.raises(WeightsSourceError):
            parse_source(bad)


def test_hugging_face_source_goes_through_hf_hub_download(
    tmp_path, monkeypatch, payload, isolated_weights
):
    calls = []

    def fake_hf_hub_download(*, repo_id, filename, revision, local_dir):
        calls.append((repo_id, filename, revision))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        return str(target)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    path = download_checkpoint(
        ["hf://someone/colormnet/" + NAME], tmp_path, DownloadOptions(progress=False)
    )
    assert calls == [("someone/colormnet", NAME, None)]
    assert path == tmp_path / NAME and path.read_bytes() == payload
    assert not (tmp_path / ".hf-staging").exists()


# --------------------------------------------------------------------------- failures as met


def _checkpoint_files(folder: Path) -> list[str]:
    """What the search would take for a checkpoint in ``folder`` (plus any .part left)."""
    return sorted(p.name for p in checkpoints_in(folder)) + sorted(
        p.name for p in folder.glob("*.part")
    )


def test_truncated_download_with_matching_content_length_leaves_nothing_usable(
    tmp_path, checkpoint_server, payload, isolated_weights
):
    # The server believes a third of the file is the whole file: Content-Length matches what it
    # sends, and no sha256 is pinned or recorded, so only the checkpoint check can catch it.
    short = payload[: len(payload) // 3]
    checkpoint_server.files["/" + NAME] = short

    with pytest.raises(CheckpointUnreadableError) as caught:
        download_checkpoint(
            [checkpoint_server.url("/" + NAME)], tmp_path, DownloadOptions(progress=False, **FAST)
        )

    message = str(caught.value)
    assert "\n" not in message and f"({len(short)} bytes)" in message
    assert "not a usable checkpoint" in message and "deleted" in message
    assert _checkpoint_files(tmp_path) == []
    manifest = tmp_path / MANIFEST_NAME
    assert not manifest.exists() or NAME not in json.loads(manifest.read_text())["files"]
    assert checkpoint_server.requests_for("/" + NAME) == [None]  # complete-looking: no retry


def test_a_truncated_mirror_is_deleted_and_the_next_one_used(
    tmp_path, caplog, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/short/" + NAME] = payload[: len(payload) // 3]
    checkpoint_server.files["/good/" + NAME] = payload
    sources = [checkpoint_server.url("/short/" + NAME), checkpoint_server.url("/good/" + NAME)]

    with caplog.at_level(logging.WARNING, logger="colorize.weights"):
        path = download_checkpoint(sources, tmp_path, DownloadOptions(progress=False, **FAST))

    assert path.read_bytes() == payload
    assert _checkpoint_files(tmp_path) == [NAME]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and sources[0] in warnings[0] and "trying source 2 of 2" in warnings[0]


def test_a_download_of_another_model_is_refused_and_deleted(
    tmp_path, checkpoint_server, isolated_weights
):
    other = tmp_path / "other.pth"
    torch.save({"backbone.fc.weight": torch.zeros(4, 4)}, other)
    checkpoint_server.files["/" + NAME] = other.read_bytes()
    folder = tmp_path / "weights"

    with pytest.raises(ArchitectureMismatchError, match="does not match.*the download was deleted"):
        download_checkpoint(
            [checkpoint_server.url("/" + NAME)], folder, DownloadOptions(progress=False, **FAST)
        )
    assert _checkpoint_files(folder) == []


@pytest.fixture
def no_real_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names under .invalid fail to resolve at once; every look-up is recorded.

    Only loopback names reach the real resolver, so nothing here can leave the machine, and no
    proxy is consulted.
    """
    import socket

    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        looked_up.append(name)
        if name not in ("127.0.0.1", "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    return looked_up


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits between retries, recorded instead of slept: a retry shows up here."""
    waited: list[float] = []
    monkeypatch.setattr(transfer.time, "sleep", waited.append)
    return waited


def test_unresolvable_hosts_fail_at_once_with_one_short_line_each(
    tmp_path, caplog, no_real_network, sleeps, isolated_weights
):
    sources = [
        "https://weights-mirror-one.invalid/v0.1/" + NAME,
        "https://weights-mirror-two.invalid/mirror/" + NAME,
    ]
    folder = tmp_path / "weights"
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="colorize.weights"):
        with pytest.raises(WeightsDownloadError) as caught:
            download_checkpoint(sources, folder, DownloadOptions(progress=False))
    elapsed = time.monotonic() - started

    assert elapsed < 2.0 * len(sources)
    assert no_real_network == ["weights-mirror-one.invalid", "weights-mirror-two.invalid"]
    assert sleeps == []  # not retried
    # One line for the first mirror as the next is tried; the final error speaks for the last.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and len(lines[0]) < 120
    assert lines[0].startswith("weights-mirror-one.invalid: host name does not resolve")
    assert lines[0].endswith("trying source 2 of 2")
    message = str(caught.value)
    assert "weights-mirror-one.invalid, weights-mirror-two.invalid: host name does not" in message
    assert "\n" not in message and len(message) < 400
    assert message.count("host name does not resolve") == 1  # said once for both mirrors
    assert f"download {sources[0]} by hand into {folder}" in message
    assert "--weights PATH" in message
    assert "Max retries" not in message and "Caused by" not in message
    assert _checkpoint_files(folder) == []


def test_first_run_without_network_ends_with_what_to_do(
    tmp_path, monkeypatch, no_real_network, sleeps, isolated_weights
):
    from colorize.weights import resolve_checkpoint

    url = "https://releases.example.invalid/" + NAME
    monkeypatch.setenv("COLORIZE_WEIGHTS_SOURCES", url)
    with pytest.raises(WeightsDownloadError) as caught:
        resolve_checkpoint(progress=False)
    assert caught.value.exit_code == 21
    assert str(caught.value) == (
        "could not download the checkpoint (releases.example.invalid: host name does not resolve "
        f"(offline, or a typo in the URL?)); download {url} by hand into "
        f"{isolated_weights}/ or pass --weights PATH"
    )
    assert sleeps == []


def test_refused_connection_is_not_retried(tmp_path, caplog, no_real_network, sleeps, isolated_weights):
    import socket

    with socket.socket() as probe:  # a loopback port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{NAME}"

    with caplog.at_level(logging.INFO, logger="colorize.weights"):
        with pytest.raises(WeightsDownloadError, match="127.0.0.1: connection refused"):
            download_checkpoint([url], tmp_path, DownloadOptions(progress=False))

    assert sleeps == [] and no_real_network == ["127.0.0.1"]
    assert caplog.records == []  # no retry lines; the error itself is the one line
    assert _checkpoint_files(tmp_path) == []


def test_transient_server_errors_are_retried(
    tmp_path, caplog, checkpoint_server, payload, sleeps, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.statuses_first["/" + NAME] = [503, 502]

    with caplog.at_level(logging.INFO, logger="colorize.weights"):
        path = download_checkpoint(
            [checkpoint_server.url("/" + NAME)], tmp_path, DownloadOptions(progress=False, **FAST)
        )

    assert path.read_bytes() == payload
    assert checkpoint_server.requests_for("/" + NAME) == [None, None, None]
    assert len(sleeps) == 2
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("HTTP 503" in line and "trying again (try 2 of 4)" in line for line in retries)
    assert not any("resuming" in line for line in retries)  # nothing had arrived to resume


def test_a_server_error_that_persists_gives_up_after_the_retries(
    tmp_path, checkpoint_server, payload, sleeps, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.statuses_first["/" + NAME] = [500] * 5
    options = DownloadOptions(progress=False, resume_attempts=2, **FAST)

    with pytest.raises(WeightsDownloadError, match=r"HTTP 500 .*gave up after 3 tries"):
        download_checkpoint([checkpoint_server.url("/" + NAME)], tmp_path, options)
    assert len(checkpoint_server.requests_for("/" + NAME)) == 3
    assert _checkpoint_files(tmp_path) == []


def test_resuming_is_announced_only_with_bytes_to_resume_from(
    tmp_path, caplog, checkpoint_server, payload, isolated_weights
):
    checkpoint_server.files["/" + NAME] = payload
    checkpoint_server.cut_first_request_after["/" + NAME] = len(payload) // 2

    with caplog.at_level(logging.INFO, logger="colorize.weights"):
        download_checkpoint(
            [checkpoint_server.url("/" + NAME)], tmp_path, DownloadOptions(progress=False, **FAST)
        )

    resumed_from = int(checkpoint_server.requests_for("/" + NAME)[1].removeprefix("bytes=")[:-1])
    resumes = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(resumes) == 1 and f"resuming from byte {resumed_from} " in resumes[0]
    assert resumed_from > 0


def test_an_unresolvable_hub_fails_before_huggingface_hub_retries(
    tmp_path, monkeypatch, no_real_network, isolated_weights
):
    import huggingface_hub

    called = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: called.append(kw))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    started = time.monotonic()
    with pytest.raises(WeightsDownloadError) as caught:
        download_checkpoint(
            ["hf://someone/colormnet/" + NAME], tmp_path, DownloadOptions(progress=False)
        )
    assert time.monotonic() - started < 2.0
    assert called == [] and no_real_network == ["huggingface.co"]
    message = str(caught.value)
    assert "(huggingface.co: host name does not resolve" in message
    assert f"https://huggingface.co/someone/colormnet/resolve/main/{NAME} by hand" in message
