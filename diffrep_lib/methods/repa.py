"""Representation alignment, REPA (Yu et al. 2024; ch. 12): while a DiT learns to denoise, an MLP projector maps
its hidden tokens after block k onto a frozen encoder's patch tokens of the *clean* image, and a cosine term
pulls them together:

    L = L_denoise + lambda * mean over tokens of (1 - cos(proj(h_k(x_t)), enc(x_0)))

(REPA writes the alignment term as -cos; 1 - cos has the same gradient and is zero for perfectly aligned
tokens.) Only the projector and the blocks up to k receive its gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, bad
from ..core import losses
from ..support.hooks import recording
from ..zoo import registry
from . import denoising, encoders


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
        raise bad(InputError, "target", target, "choose the DiT's patch size or resample the encoder's tokens "
                  "(match_grid) so that both have the same grid", f"token grids differ: the DiT gives "
                  f"{tuple(projected.shape[:2])} (batch, tokens), the encoder {tuple(target.shape[:2])}")
    if projected.shape[2] != target.shape[2]:
        raise bad(InputError, "projected", projected, f"give the projector the encoder's width, {target.shape[2]}")
    return 1 - F.cosine_similarity(projected, target, dim=-1).mean(1)


def repa_terms(net, projector: Projector, target: Tensor, x_t: Tensor, t: Tensor, y: Tensor | None,
               depth: int) -> tuple[Tensor, Tensor]:
    """One forward pass of the DiT `net` on x_t with the hidden tokens after block `depth` (1-based: depth=k reads
    the output of net.blocks[k-1]) captured: returns (the network's output, the per-sample alignment loss against
    the encoder tokens `target` of the clean images)."""
    if not 1 <= depth <= len(net.blocks):
        raise bad(InputError, "depth", depth, f"choose a depth in 1..{len(net.blocks)} (the DiT's blocks)")
    with recording({"out": net.blocks[depth - 1]}) as hidden:        # keeps the graph: the term trains blocks
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


# ------------------------------------------------------------------------------------- the zoo's entries

def match_grid(tokens: Tensor, n: int) -> Tensor:
    """Teacher tokens (N, T, D) on a square grid resampled (bilinear) to n tokens, when the DiT's patch grid is
    finer than the encoder's (the full DiT's 14 x 14 against the encoder's 7 x 7). Equal grids pass unchanged."""
    if tokens.shape[1] == n:
        return tokens
    side, new = round(tokens.shape[1] ** 0.5), round(n ** 0.5)
    if side * side != tokens.shape[1] or new * new != n:
        raise bad(InputError, "n", n, "resample between square grids (n a square number)",
                  f"cannot resample {tokens.shape[1]} tokens to {n}")
    grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
    return F.interpolate(grid, size=(new, new), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)


class Aligned(encoders.WithTeacher):
    """REPA: the DiT `net`, the projector, and the block whose output is aligned to the teacher's tokens."""

    def __init__(self, net: nn.Module, projector: nn.Module, depth: int, teacher=None):
        super().__init__(net, teacher)
        self.projector, self.depth = projector, depth

    def export(self) -> nn.Module:
        """What the zoo keeps: the DiT alone (REPA's projector only serves training)."""
        return self.net


def aligned_terms(net, x0: Tensor, y, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """L_simple plus the alignment term, 1 - cosine between the projected hidden tokens after block k and the frozen
    teacher's tokens of the *clean* image (`net` is an Aligned)."""
    x_t, t, tgt = losses.noised(x0, abar, recipe.prediction, generator)
    if y is not None and null is not None and recipe.p_uncond > 0:
        y = losses.drop_labels(y, recipe.p_uncond, null, generator)
    target = match_grid(net.teacher.to(x0.device).tokens(x0), net.net.grid ** 2)
    out, align = repa_terms(net.net, net.projector, target, x_t, t, y, net.depth)
    return {"denoise": (out - tgt).pow(2).flatten(1).mean(1), "align": align}


def with_projector(r, net, *, for_training: bool):
    """Training holds the projector and the teacher beside the DiT; the zoo stores the DiT alone."""
    if not for_training:
        return net
    enc = encoders.teacher(r)                                   # loaded before the projector is drawn
    return Aligned(net, Projector(r.model.dim, enc.dim, r.align_hidden), r.align_depth, enc)


registry.register(registry.METHODS, "denoise_aligned", registry.Method(
    terms=aligned_terms, weights=lambda r: {"align": r.align_weight},      # L = L_denoise + lambda * L_align
    wrap=with_projector, evaluate=denoising.held_out_loss, curve=denoising.fid_curve))
