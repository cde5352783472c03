"""Half precision checked on CPU: fp16 (the CUDA default) against fp32 on the golden cases, a
stress case at the edge of the fp16 range, the float32 guards, and what ``auto`` picks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from colorize.color import assemble_rgb
from colorize.devices import bf16_feature, cpu_flags, cpu_native_bf16
from colorize.engine import EngineConfig, build_colorizer
from colorize.engine.precision import CPU_FP16_NOTE, choose_precision
from colorize.errors import PrecisionRangeError
from colorize.memory import MemoryBank, MemoryConfig

PSNR_FLOOR_DB = 45.0


def psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    mse = np.mean((ours.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def finite_everywhere(network) -> tuple[list[str], "callable"]:
    """Forward hooks on every module that record the modules whose output has inf or NaN."""
    bad: list[str] = []
    handles = []
    for name, module in network.named_modules():
        def hook(module, inputs, output, name=name):
            outputs = output if isinstance(output, (tuple, list)) else (output,)
            for tensor in outputs:
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() \
                        and not bool(torch.isfinite(tensor).all()):
                    bad.append(name or "network")
        handles.append(module.register_forward_hook(hook))
    return bad, lambda: [handle.remove() for handle in handles]


def test_fp16_matches_fp32_on_the_golden_cases(golden_case, synthetic_weights_file, caplog):
    case = golden_case
    frames, reference = case.frames(), case.reference()

    def run(precision: str):
        colorizer = build_colorizer(EngineConfig(
            weights=synthetic_weights_file, device="cpu", precision=precision,
            reference_is_first_frame=case.reference_is_first_frame))
        bad, remove = finite_everywhere(colorizer.network)
        try:
            out = list(colorizer.colorize(frames, reference))
        finally:
            remove()
        return colorizer, out, bad

    with caplog.at_level(logging.WARNING):
        half, fp16, bad = run("fp16")
    assert CPU_FP16_NOTE in caplog.text                      # allowed on CPU, with the note
    assert next(half.network.decoder.parameters()).dtype == torch.float16
    assert bad == []                                         # no inf/NaN in any module output
    _, fp32, _ = run("fp32")
    assert len(fp16) == len(fp32) == len(case.frame_names)
    per_frame = [psnr(a, b) for a, b in zip(fp16, fp32)]
    assert min(per_frame) >= PSNR_FLOOR_DB, per_frame
    # Really computed in half: not the fp32 frames (frame 0 of the first-frame case is the
    # reference's own colour, identical in both, so look at the others).
    assert any(not np.array_equal(a, b) for a, b in zip(fp16[1:], fp32[1:]))


# -- stress: activations pushed toward the fp16 range ----------------------------------------

def _scaled_pred(network, factor: float):
    """Scale the decoder's last convolution, whose output (the logits) is the widest activation
    the frame's colour depends on; the hidden state and memory are untouched."""
    with torch.no_grad():
        network.decoder.pred.weight.mul_(factor)
        network.decoder.pred.bias.mul_(factor)


def _small_clip():
    g = np.random.default_rng(3)
    frames = [g.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    reference = g.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return frames, reference


def _logit_peak(colorizer, frames, reference) -> float:
    peak = []
    handle = colorizer.network.decoder.pred.register_forward_hook(
        lambda module, inputs, output: peak.append(float(output.float().abs().max())))
    try:
        list(colorizer.colorize(frames, reference))
    finally:
        handle.remove()
    return max(peak)


def test_fp16_near_its_range_stays_finite_and_past_it_fails_clearly(synthetic_weights_file):
    frames, reference = _small_clip()
    colorizer = build_colorizer(EngineConfig(weights=synthetic_weights_file, device="cpu",
                                             precision="fp16"))
    natural = _logit_peak(colorizer, frames, reference)
    # Near the edge: logits scaled to about a third of fp16's largest value.
    near = 20000.0 / natural
    _scaled_pred(colorizer.network, near)
    peak = _logit_peak(colorizer, frames, reference)
    assert 10000 < peak < torch.finfo(torch.float16).max
    out = list(colorizer.colorize(frames, reference))
    assert all(frame.dtype == np.uint8 for frame in out) and len(out) == 2
    # Past it: the engine refuses the frame with the documented message.
    _scaled_pred(colorizer.network, 16.0)
    with pytest.raises(PrecisionRangeError, match=r"frame 0: the network overflowed fp16 .*65504.*--fp32"):
        list(colorizer.colorize(frames, reference))


# -- the float32 guards ------------------------------------------------------------------------

def test_colour_conversion_ignores_the_runs_autocast():
    """Frames are assembled while the run's autocast is on; the LAB -> RGB product must still
    run in float32 (it moved output levels in half)."""
    g = torch.Generator().manual_seed(0)
    luminance = torch.rand(1, 40, 40, generator=g) * 2 - 1
    ab = torch.rand(2, 40, 40, generator=g) * 1.6 - 0.8
    plain = assemble_rgb(luminance, ab)
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype):
            assert torch.equal(assemble_rgb(luminance, ab), plain)


def test_memory_readout_of_a_key_far_from_everything_is_finite():
    """exp of every top-k score underflows for a key far from all memory: the readout must not
    divide 0 by 0 (it uses the max-subtracted softmax there; elsewhere test_memory_bank checks
    the official form)."""
    g = torch.Generator().manual_seed(4)
    bank = MemoryBank(MemoryConfig(top_k=3))
    key = torch.randn(1, 8, 2, 3, generator=g)
    values = torch.randn(1, 2, 5, 2, 3, generator=g)
    bank.add(key, torch.ones(1, 1, 2, 3), values, torch.ones(1, 8, 2, 3))
    near = bank.read(key, torch.ones(1, 8, 2, 3))
    far = bank.read(key + 1000.0, torch.ones(1, 8, 2, 3))
    assert torch.isfinite(near).all() and torch.isfinite(far).all()
    rows = values.reshape(10, 6).t()                                  # (positions, channels)
    # The readout is a convex mix of stored values: inside their range per channel.
    flat = far.reshape(10, 6).t()
    assert (flat >= rows.min(0).values - 1e-5).all() and (flat <= rows.max(0).values + 1e-5).all()


# -- what auto picks ---------------------------------------------------------------------------

ZEN5_FLAGS = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS_FLAGS = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
OLD_EPYC_FLAGS = "flags\t\t: fpu sse2 avx avx2 fma\n"


def test_cpu_flags_name_the_native_bf16_feature():
    assert bf16_feature(cpu_flags(SAPPHIRE_RAPIDS_FLAGS)) == "AMX-BF16"
    assert bf16_feature(cpu_flags(ZEN5_FLAGS)) == "AVX512-BF16"
    assert bf16_feature(cpu_flags(OLD_EPYC_FLAGS)) is None
    assert bf16_feature(cpu_flags("")) is None


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_bf16_is_not_assumed_off_linux(platform):
    assert cpu_native_bf16(platform) is None


@pytest.mark.parametrize("feature, expected", [("AVX512-BF16", "bf16"), ("AMX-BF16", "bf16"), (None, "fp32")])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, feature, expected):
    monkeypatch.setattr("colorize.devices.cpu_native_bf16", lambda platform=None: feature)
    choice = choose_precision("auto", torch.device("cpu"))
    assert choice.precision == expected
    assert (feature or "no native bfloat16") in choice.reason
    # An explicit choice is never second-guessed; --fp32 gives the official numbers.
    assert choose_precision("fp32", torch.device("cpu")).precision == "fp32"
    assert choose_precision("fp16", torch.device("cpu")).precision == "fp16"


def test_auto_elsewhere():
    assert choose_precision("auto", torch.device("cuda")).precision == "fp16"
    assert choose_precision("auto", torch.device("mps")).precision == "fp32"


def test_plan_names_the_precision_and_why(monkeypatch, tmp_path):
    from colorize.devices import MemoryBudget
    from colorize.engine import make_plan

    monkeypatch.setattr("colorize.devices.cpu_native_bf16", lambda platform=None: "AVX512-BF16")
    budget = MemoryBudget(free_bytes=8 << 30, total_bytes=8 << 30, source="test")
    plan = make_plan(EngineConfig(weights=tmp_path / "w"), (224, 224), torch.device("cpu"), budget)
    assert "precision:        bf16 (auto: this CPU has AVX512-BF16; --fp32 for the official numbers)" \
        in plan.describe()
    fp32 = make_plan(EngineConfig(weights=tmp_path / "w", precision="fp32"), (224, 224),
                     torch.device("cpu"), budget)
    assert "precision:        fp32 (--fp32)" in fp32.describe()
