"""Where the library keeps its files and how it runs here: the cache folder, atomic writes, progress bars, and the
batch size and weight layout of inference (bfloat16 is the core's `precision`).

Environment: DIFFREP_CACHE (trained models and memoised evaluations; default ~/.cache/diffrep) and
DIFFREP_PROGRESS=0 (no progress bars, as in executed book pages).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch


def cache_dir() -> Path:
    """The folder of trained models (zoo/) and memoised evaluations (memo/)."""
    return Path(os.environ.get("DIFFREP_CACHE", Path.home() / ".cache" / "diffrep"))


def inference_batch(device) -> int:
    """Images per sampler call where a network is only read: 2500 on a GPU; 32 on a CPU, where a small network's
    activations then stay in the cores' caches (classifier-free guidance passes twice that). `make bench` prints
    the sampling time by batch size, layout and precision: on two cores, 300 guided samples of the zoo's U-Net took
    about half as long in batches of 32 as in one batch of all 300 (float32), and batches of 128 were slower than 32
    in bfloat16 too."""
    return 2500 if torch.device(device).type == "cuda" else 32


def feature_batch(device) -> int:
    """Images per forward pass when features are read (`readout.framework`): 2500 on a GPU, 128 on a CPU. One
    pass per timestep, no sampler state between calls: on two cores with bfloat16 the zoo's U-Net read 1,024
    images at two timesteps about 1.3x faster in batches of 128 than of 32 (`make bench`); the features do not
    depend on the batch."""
    return 2500 if torch.device(device).type == "cuda" else 128


def for_inference(model: torch.nn.Module, *, bf16: bool = False) -> torch.nn.Module:
    """The model with its convolution weights in the layout its CPU runs fastest (in place; returned): channels-last
    when it will run in float32, where the convolutions then run about 1.1-1.4x faster at the inference batch; the
    default layout when it will run in bfloat16 (`bf16`: the CPU computes bf16 natively, `core.precision`), where
    oneDNN's bf16 convolutions ran 1.3-1.6x faster in it (`make bench`). The layout changes float32 results only in
    the last bits, bf16 results at bf16's rounding. Inputs keep their layout; activations of channels-last
    convolutions come out channels-last, which every tensor operation accepts (`.view` needs `.contiguous()`)."""
    return model.to(memory_format=torch.contiguous_format if bf16 else torch.channels_last)


def progress_enabled() -> bool:
    """Progress bars on terminals and in Jupyter, none in executed book pages (DIFFREP_PROGRESS=0)."""
    return os.environ.get("DIFFREP_PROGRESS", "1") != "0"



def atomic_write(path, data: bytes) -> None:
    """`data` to `path` through a temporary file in the same folder and an atomic rename: readers see the old file
    or the new one, never a partial one, and a failed write (a full disk) leaves the old file and no temporary one.
    Every file the library writes into its cache or package goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
