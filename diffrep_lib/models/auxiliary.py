"""A denoiser with the modules its training objective trains beside it (chs. 9 and 12).

Representation alignment trains a projector next to the DiT; online guidance trains cluster prototypes next to
the U-Net. Both read a frozen teacher encoder. The wrappers keep these together for training; `forward` is the
denoiser's, so the training loop, the EMA and the samplers see an ordinary denoiser. The teacher is held outside
the module tree: it is neither optimised nor saved with the weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _WithTeacher(nn.Module):
    def __init__(self, net: nn.Module, teacher=None):
        super().__init__()
        self.net = net
        self._teacher = [teacher]                  # a list: not a submodule

    @property
    def teacher(self):
        if self._teacher[0] is None:
            raise RuntimeError("this model was loaded without its teacher encoder; only training needs it")
        return self._teacher[0]

    @property
    def null_label(self):
        return self.net.null_label

    def forward(self, x, t, y=None):
        return self.net(x, t, y) if y is not None else self.net(x, t)


def match_grid(tokens: Tensor, n: int) -> Tensor:
    """Teacher tokens (N, T, D) on a square grid resampled (bilinear) to n tokens, when the DiT's patch grid is
    finer than the encoder's (the full DiT's 14 x 14 against the encoder's 7 x 7). Equal grids pass unchanged."""
    if tokens.shape[1] == n:
        return tokens
    side, new = round(tokens.shape[1] ** 0.5), round(n ** 0.5)
    if side * side != tokens.shape[1] or new * new != n:
        raise ValueError(f"cannot resample {tokens.shape[1]} tokens to {n}: both grids must be square")
    grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
    return F.interpolate(grid, size=(new, new), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)


class Aligned(_WithTeacher):
    """REPA: the DiT `net`, the projector, and the block whose output is aligned to the teacher's tokens."""

    def __init__(self, net: nn.Module, projector: nn.Module, depth: int, teacher=None):
        super().__init__(net, teacher)
        self.projector, self.depth = projector, depth

    def export(self) -> nn.Module:
        """What the zoo keeps: the DiT alone (REPA's projector only serves training)."""
        return self.net


class SelfLabelled(_WithTeacher):
    """Online guidance: the conditional denoiser `net` and the cluster prototypes whose ids condition it."""

    def __init__(self, net: nn.Module, clusters: nn.Module, teacher=None):
        super().__init__(net, teacher)
        self.clusters = clusters

    @torch.no_grad()
    def assign(self, features: Tensor) -> Tensor:
        return self.clusters.assign(features)
