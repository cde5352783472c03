"""Downloading the checkpoint from a loopback server: progress, resume, checksums, mirrors."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from colorize.weights import ChecksumMismatchError, WeightsDownloadError, WeightsSourceError
from colorize.weights.download import DownloadOptions, download_checkpoint, parse_source
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
    assert len(lines) >= 3 and "100%" in lines[-1]
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
