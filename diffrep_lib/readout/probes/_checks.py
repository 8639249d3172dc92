"""The argument checks the probes share: each returns its argument or raises `errors.InputError` naming it, the
value received and the fix, so that a probe checks once, at its boundary."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import InputError, bad, finite


def _positive(value, name: str, fix: str, zero: bool = False) -> float:
    """value as a finite number > 0 (>= 0 with zero=True), or the InputError that says so."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        v = math.nan
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero):
        raise bad(InputError, name, value, fix)
    return v


def _tensor(x, name: str, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise bad(InputError, name, x, f"pass {what} as a torch tensor (torch.as_tensor(...))")
    return x


def _vectors(x, name: str, rows: int = 1) -> Tensor:
    """Frozen features: a real 2-D (N, D) tensor, N >= rows, D >= 1, all finite."""
    x = _tensor(x, name, "features (N, D)")
    if x.dim() != 2:
        fix = ("pool or flatten the maps to one vector per example first: features.pool(maps, size) or x.flatten(1)"
               if x.dim() > 2 else "pass one row per example, (N, D): x[:, None] for a single feature")
        raise bad(InputError, name, x, fix, "features must be 2-D (N, D)")
    if x.is_complex() or x.dtype == torch.bool:
        raise bad(InputError, name, x, "pass real-valued features: x.float()")
    if len(x) < rows or x.shape[1] < 1:
        raise bad(InputError, name, x, f"pass at least {rows} example(s) with at least one feature each",
                  "empty" if not x.numel() else f"{len(x)} example(s)")
    finite(x, name, "drop or repair the examples with NaN or inf features (a diverged network or a bad "
                     "normalisation upstream)")
    return x


def _class_ids(y, name: str, n: int, rows: str) -> Tensor:
    """Class labels: an integer 1-D tensor of length n with ids >= 0, as int64."""
    y = _tensor(y, name, "class labels (N,)")
    if y.dim() != 1:
        fix = ("pass class ids, not one-hot rows: y.argmax(1)" if y.dim() == 2 and y.shape[1] > 1 else
               "pass a 1-D tensor of class ids: y.flatten()")
        raise bad(InputError, name, y, fix, "labels must be 1-D")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise bad(InputError, name, y, "pass integer class ids 0..C-1: y.long() if they are whole numbers")
    if len(y) != n:
        raise bad(InputError, name, y, f"pass one label per row of {rows}", f"{len(y)} labels for {n} rows")
    if n and int(y.min()) < 0:
        raise bad(InputError, name, y, "pass class ids 0..C-1 (remap with torch.unique(y, return_inverse=True)[1])",
                  f"ids from {int(y.min())} to {int(y.max())}")
    return y if y.dtype == torch.int64 else y.long()


def _maps(feats, name: str) -> Tensor:
    """Per-pixel features (N, F, H, W): real, non-empty, finite."""
    feats = _tensor(feats, name, "per-pixel features (N, F, H, W)")
    if feats.dim() != 4 or feats.is_complex() or feats.dtype == torch.bool or not feats.numel():
        raise bad(InputError, name, feats, "pass per-pixel features (N, F, H, W) at the masks' resolution "
                  "(framework.dense_features returns them)")
    finite(feats, name, "drop or repair the images with NaN or inf features")
    return feats
