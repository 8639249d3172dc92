"""Representation alignment, REPA (Yu et al. 2024; ch. 12): while a DiT learns to denoise, an MLP projector maps
its hidden tokens after block k onto a frozen encoder's patch tokens of the *clean* image, and a cosine term
pulls them together:

    L = L_denoise + lambda * mean over tokens of (1 - cos(proj(h_k(x_t)), enc(x_0)))

(REPA writes the alignment term as -cos; 1 - cos has the same gradient and is zero for perfectly aligned
tokens.) Only the projector and the blocks up to k receive its gradient.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Projector(nn.Module):
    """REPA's projector: a 3-layer MLP with SiLU, applied to each token (the paper uses hidden width 2048)."""

    def __init__(self, dim: int, target_dim: int, hidden: int = 2048):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, target_dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


def alignment_loss(projected: Tensor, target: Tensor) -> Tensor:
    """Per-sample 1 - mean token cosine similarity (N,), for projected hidden tokens and encoder tokens (N, T, D).
    The two token grids must match (a patch-4 DiT on 28x28 images has 7x7 = 49 tokens)."""
    if projected.shape[:2] != target.shape[:2]:
        raise ValueError(f"token grids differ: the DiT gives {tuple(projected.shape[:2])} (batch, tokens), the "
                         f"encoder {tuple(target.shape[:2])}; choose the DiT's patch size or resample the encoder's "
                         "tokens so that both have the same grid")
    if projected.shape[2] != target.shape[2]:
        raise ValueError(f"projector output width {projected.shape[2]} != encoder width {target.shape[2]}")
    return 1 - F.cosine_similarity(projected, target, dim=-1).mean(1)


@contextlib.contextmanager
def capture(module: nn.Module):
    """Record the output of `module` during the forward passes inside the block, *with* its autograd graph (unlike
    `features.extract`, which reads detached activations). Yields a dict whose 'out' is the latest output; the
    hook is removed on exit, also after an error."""
    store: dict[str, Tensor] = {}
    handle = module.register_forward_hook(lambda m, a, out: store.__setitem__("out", out))
    try:
        yield store
    finally:
        handle.remove()


def repa_terms(net, projector: Projector, target: Tensor, x_t: Tensor, t: Tensor, y: Tensor | None,
               depth: int) -> tuple[Tensor, Tensor]:
    """One forward pass of the DiT `net` on x_t with the hidden tokens after block `depth` (1-based: depth=k reads
    the output of net.blocks[k-1]) captured: returns (the network's output, the per-sample alignment loss against
    the encoder tokens `target` of the clean images)."""
    if not 1 <= depth <= len(net.blocks):
        raise ValueError(f"depth must be in 1..{len(net.blocks)} (the DiT's blocks), got {depth}")
    with capture(net.blocks[depth - 1]) as hidden:
        out = net(x_t, t, y) if y is not None else net(x_t, t)
    return out, alignment_loss(projector(hidden["out"]), target)


def steps_to_reach(curve: list[dict], target: float, key: str = "fid") -> float | None:
    """The first training step at which a checkpoint curve [{'step': s, key: value}, ...] reaches `target` or
    below, interpolated linearly between checkpoints (before the first one: from that checkpoint alone); None if
    it never does. REPA's headline is baseline_steps / steps_to_reach(repa_curve, baseline_final)."""
    prev = None
    for point in curve:
        if point[key] <= target:
            if prev is None or prev[key] == point[key]:
                return float(point["step"])
            frac = (prev[key] - target) / (prev[key] - point[key])
            return prev["step"] + frac * (point["step"] - prev["step"])
        prev = point
    return None
