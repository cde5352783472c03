"""The engine: chunked key encoding, out-of-memory back-off, processing size, short videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.engine import EngineConfig, MemorySettings, build_colorizer, make_plan
from colorize.devices import MemoryBudget

SIZE = (112, 144)   # padded to 112 x 224: a 7 x 14 grid, cheap on CPU


def synthetic_video(count: int, size=SIZE, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    height, width = size
    ramp = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    frames = []
    for t in range(count):
        gray = np.clip(np.roll(ramp, 3 * t, axis=1) + rng.normal(0, 12, size), 0, 255)
        frames.append(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    return frames


def colourful_reference(size=SIZE) -> np.ndarray:
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, 255 - x * 255 // width], -1).astype(np.uint8)


def predictions(colorizer, frames, reference):
    return [ab.clone() for _, ab in colorizer.predict(frames, reference)]


@pytest.fixture(scope="module")
def memory():
    # Consolidation early, so that the short videos here exercise long-term memory too.
    return MemorySettings(mem_every=2, max_mid_term_frames=3, min_mid_term_frames=2,
                          num_prototypes=20)


def config(weights, **overrides) -> EngineConfig:
    return EngineConfig(weights=weights, device="cpu", precision="fp32", **overrides)


def test_chunked_key_encoding_gives_the_same_numbers(synthetic_weights_file, memory):
    frames, reference = synthetic_video(7), colourful_reference()
    one = predictions(build_colorizer(config(synthetic_weights_file, chunk_size=1, memory=memory)),
                      frames, reference)
    chunked_colorizer = build_colorizer(config(synthetic_weights_file, chunk_size=3, memory=memory))
    chunked = predictions(chunked_colorizer, frames, reference)
    assert chunked_colorizer.last_plan.chunk_size == 3
    assert len(one) == len(chunked) == 7
    for a, b in zip(one, chunked):
        assert torch.max(torch.abs(a - b)) < 1e-4


def test_out_of_memory_halves_the_chunk_and_retries(synthetic_weights_file, memory, monkeypatch):
    frames, reference = synthetic_video(5), colourful_reference()
    expected = predictions(build_colorizer(config(synthetic_weights_file, chunk_size=1,
                                                  memory=memory)), frames, reference)
    colorizer = build_colorizer(config(synthetic_weights_file, chunk_size=4, memory=memory))
    real_encode = colorizer.network.encode_key
    batches = []

    def limited_allocator(images, *args, **kwargs):
        # A fake device that holds only two frames of key-encoder activations.
        batches.append(images.shape[0])
        if images.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_encode(images, *args, **kwargs)

    monkeypatch.setattr(colorizer.network, "encode_key", limited_allocator)
    got = predictions(colorizer, frames, reference)
    assert batches[0] == 4 and max(batches[1:]) <= 2
    assert any("retrying with 2" in event for event in colorizer.events)
    for a, b in zip(expected, got):
        assert torch.max(torch.abs(a - b)) < 1e-4


def test_out_of_memory_at_one_frame_is_a_clear_error(synthetic_weights_file, monkeypatch):
    from colorize.engine import OutOfDeviceMemoryError

    colorizer = build_colorizer(config(synthetic_weights_file, chunk_size=1))

    def no_memory(images, *args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(colorizer.network, "encode_key", no_memory)
    with pytest.raises(OutOfDeviceMemoryError, match="smallest processing size"):
        list(colorizer.colorize(synthetic_video(2), colourful_reference()))
    assert any("processing at" in event for event in colorizer.events)   # it tried smaller first


@pytest.mark.parametrize("first_frame_mode", [True, False])
def test_one_frame_video(synthetic_weights_file, first_frame_mode):
    reference = colourful_reference()
    colorizer = build_colorizer(config(synthetic_weights_file,
                                       reference_is_first_frame=first_frame_mode))
    out = list(colorizer.colorize(synthetic_video(1), reference))
    assert len(out) == 1 and out[0].shape == (*SIZE, 3) and out[0].dtype == np.uint8
    (luminance, ab), = list(colorizer.predict(synthetic_video(1), reference))
    if first_frame_mode:
        from colorize.color import rgb_to_normalized_lab

        reference_ab = rgb_to_normalized_lab(torch.from_numpy(reference).permute(2, 0, 1))[1:]
        assert torch.equal(ab, reference_ab)     # frame 0 keeps the reference's colours exactly
    else:
        assert ab.abs().max() > 0.01             # predicted, not empty


def test_processing_size_runs_small_and_returns_full_size(synthetic_weights_file):
    frames = synthetic_video(3, size=(150, 250))
    colorizer = build_colorizer(config(synthetic_weights_file, max_side=120))
    out = list(colorizer.colorize(frames, colourful_reference((150, 250))))
    assert colorizer.last_plan.processing_size == (72, 120)
    assert [o.shape for o in out] == [(150, 250, 3)] * 3
    # The luminance of the output is the input's own, at full resolution.
    gray_in = frames[1][..., 0].astype(np.float64)
    gray_out = out[1].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.corrcoef(gray_in.ravel(), gray_out.ravel())[0, 1] > 0.95


def test_plan_lowers_processing_size_when_memory_is_short(tmp_path):
    small = MemoryBudget(free_bytes=2 << 30, total_bytes=2 << 30, source="test")
    roomy = MemoryBudget(free_bytes=64 << 30, total_bytes=64 << 30, source="test")
    cfg = EngineConfig(weights=tmp_path / "w", precision="fp16")
    cuda = torch.device("cuda")
    full = make_plan(cfg, (2160, 3840), cuda, roomy)
    tight = make_plan(cfg, (2160, 3840), cuda, small)
    assert full.processing_size == (2160, 3840) and full.chunk_size > 1
    assert max(tight.processing_size) < 3840 and tight.chunk_size >= 1
    assert tight.estimated_peak_bytes <= small.free_bytes
    assert "lowered" in tight.reason


def test_bf16_on_cpu_stays_close_to_fp32(synthetic_weights_file):
    frames, reference = synthetic_video(3), colourful_reference()
    fp32 = np.stack(list(build_colorizer(config(synthetic_weights_file)).colorize(frames, reference)))
    bf16_colorizer = build_colorizer(EngineConfig(weights=synthetic_weights_file, device="cpu",
                                                  precision="bf16"))
    assert next(bf16_colorizer.network.decoder.parameters()).dtype == torch.bfloat16
    bf16 = np.stack(list(bf16_colorizer.colorize(frames, reference)))
    mse = np.mean((bf16.astype(np.float64) - fp32) ** 2)
    psnr = 10 * np.log10(255 ** 2 / max(mse, 1e-12))
    assert 30 < psnr < 99        # close, but really computed in another precision


def test_out_of_memory_at_one_frame_lowers_the_processing_size(synthetic_weights_file, monkeypatch):
    size = (150, 250)                       # padded 224 x 336 at full size
    frames, reference = synthetic_video(3, size=size), colourful_reference(size)
    colorizer = build_colorizer(config(synthetic_weights_file, chunk_size=1))
    real_encode = colorizer.network.encode_key

    def small_device(images, *args, **kwargs):
        # Only inputs up to 112 x 224 padded fit on this pretend device.
        if images.shape[-2] * images.shape[-1] > 112 * 224:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_encode(images, *args, **kwargs)

    monkeypatch.setattr(colorizer.network, "encode_key", small_device)
    out = list(colorizer.colorize(frames, reference))
    assert [o.shape for o in out] == [(*size, 3)] * 3        # every frame, at full size
    assert colorizer.last_plan.padded_size == (112, 224)
    assert any("processing at" in event for event in colorizer.events)
