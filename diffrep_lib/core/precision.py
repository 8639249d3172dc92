"""bfloat16 where the hardware computes it natively, float32 elsewhere (sampling, feature extraction, training).

A CPU without bf16 instructions (AVX512-BF16 or AMX) emulates bfloat16 matrix work: a U-Net forward pass in bf16
autocast took about 10x as long as in float32 on such a CPU (AVX2 only; measured for this book). So a request
for bf16 is honoured only where it is fast: GPUs with bf16, CPUs with bf16 instructions.
"""
from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def bf16_native(device) -> bool:
    """Whether `device` (a torch.device, a name such as 'cuda:0', or a tensor's device) computes bf16 natively."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return kind == "cpu" and cpu_has_bf16()


def bf16_autocast(device, enabled: bool = True):
    """bfloat16 autocast on `device` when enabled and the device computes bf16 natively (`bf16_native`); a
    disabled context (float32) otherwise. Weights stay float32; matrix products run in bfloat16."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=enabled and bf16_native(device))
