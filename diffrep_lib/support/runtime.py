"""Where the library keeps its files and how it runs here: the cache folder, progress bars, bfloat16.

Environment: DIFFREP_CACHE (trained models and memoised evaluations; default ~/.cache/diffrep) and
DIFFREP_PROGRESS=0 (no progress bars, as in executed book pages).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def cache_dir() -> Path:
    """The folder of trained models (zoo/) and memoised evaluations (memo/)."""
    return Path(os.environ.get("DIFFREP_CACHE", Path.home() / ".cache" / "diffrep"))


def progress_enabled() -> bool:
    """Progress bars on terminals and in Jupyter, none in executed book pages (DIFFREP_PROGRESS=0)."""
    return os.environ.get("DIFFREP_PROGRESS", "1") != "0"


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AVX512-BF16 or AMX); elsewhere bf16 autocast would be
    emulated and slower than float32."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def bf16_autocast(device, enabled: bool = True):
    """bfloat16 autocast on `device` (a torch.device, a name such as 'cuda:0', or a tensor's device), or a
    disabled context when `enabled` is false. Weights stay float32; matrix products run in bfloat16."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)
