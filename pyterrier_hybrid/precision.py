"""Whether a device runs bfloat16 natively, shared by training (autocast during a run) and retrieval (encoding).

On a CPU without AVX512-BF16 or AMX, torch emulates bfloat16 matrix products: measured on a 2-core AVX2 machine
at the encoder's shapes, 1.3 GFLOP/s against 77 for float32, so a bfloat16 training step there took 42 s where
float32 took 3.5-5 s. Both training and retrieval therefore ask before they autocast.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["native_bf16_available", "training_device"]


def native_bf16_available(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run natively on ``device`` (where they are emulated, bfloat16 is far
    slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # torch has no public query for this; these private helpers exist since torch 2.0 and are guarded.
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        with contextlib.suppress(Exception):
            return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def training_device() -> torch.device:
    """The device a training run uses: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
