"""Host-side tuning done for CPU runs."""

from __future__ import annotations

import platform

import psutil
import pytest
import torch

from colorize.devices import keep_freed_host_memory

on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_malloc_tuning_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("COLORIZE_MALLOC_TUNING", "0")
    assert keep_freed_host_memory() is False


@pytest.mark.skipif(not on_glibc, reason="mallopt exists in glibc only")
def test_freed_activation_memory_stays_with_the_process(monkeypatch):
    monkeypatch.delenv("COLORIZE_MALLOC_TUNING", raising=False)
    assert keep_freed_host_memory() is True
    process = psutil.Process()
    block = torch.ones(64 * 1024 * 1024 // 4)   # 64 MB, touched
    held = process.memory_info().rss
    del block
    after_free = process.memory_info().rss
    # Default glibc unmaps the block at once (RSS drops by ~64 MB); tuned, the pages stay for
    # the next frame's tensors. (That reuse keeps RSS flat over long videos is measured by
    # benchmarks/bench_memory.py, not here: glibc may grow the heap a few times first.)
    assert held - after_free < 16 * 1024 * 1024
