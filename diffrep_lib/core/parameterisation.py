"""Converters between what a network predicts: eps, x0 or v (survey Eqs. 6 and 8; ch. 1).

For a VP marginal x_t = alpha x0 + s eps with alpha^2 + s^2 = 1 (alpha = sqrt(abar), s = sqrt(1-abar))::

    eps = (x_t - alpha x0) / s        x0 = (x_t - s eps) / alpha
    v   = alpha eps - s x0            (Salimans & Ho 2022; the survey's Eq. 8 is misprinted, see ch. 1)
    x0  = alpha x_t - s v             eps = s x_t + alpha v

`alpha` and `s` broadcast against x_t.
"""
from __future__ import annotations

import torch

from ..errors import InputError, bad

Tensor = torch.Tensor

KINDS = ("eps", "x0", "v")


def to_x0(pred: Tensor, kind: str, x_t: Tensor, alpha: Tensor, s: Tensor) -> Tensor:
    """The clean-image estimate x0_hat implied by a prediction of the given kind."""
    if kind == "x0":
        return pred
    if kind == "eps":
        return (x_t - s * pred) / alpha
    if kind == "v":
        return alpha * x_t - s * pred
    raise bad(InputError, "kind", kind, f"choose one of {KINDS}")


def from_x0(x0: Tensor, kind: str, x_t: Tensor, alpha: Tensor, s: Tensor) -> Tensor:
    """The prediction of the given kind that is consistent with x0 at x_t."""
    if kind == "x0":
        return x0
    eps = (x_t - alpha * x0) / s
    if kind == "eps":
        return eps
    if kind == "v":
        return alpha * eps - s * x0
    raise bad(InputError, "kind", kind, f"choose one of {KINDS}")


def convert(pred: Tensor, src: str, dst: str, x_t: Tensor, alpha: Tensor, s: Tensor) -> Tensor:
    """Re-express a prediction of kind `src` as kind `dst`."""
    return from_x0(to_x0(pred, src, x_t, alpha, s), dst, x_t, alpha, s)


def target(kind: str, x0: Tensor, eps: Tensor, alpha: Tensor, s: Tensor) -> Tensor:
    """The regression target of a network of this kind, given the clean sample and the noise."""
    return {"eps": lambda: eps, "x0": lambda: x0, "v": lambda: alpha * eps - s * x0}[kind]()
