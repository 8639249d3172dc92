"""Diffusion self-guidance (Epstein et al. 2023; survey §3.2.4; ch. 11): steer sampling with an energy on the
network's own cross-attention maps, so that properties of one object (where it is, how large) change while the
condition stays the same.

A_k is token k's attention map: for every pixel, the attention it pays to token k (averaged over heads and over
the chosen layers, each upsampled to a common grid). Properties of the map (`centroid`, `size`) are differentiable
functions of x; an energy g(A) states the edit, e.g. moving object k by delta::

    g = || centroid(A_k) - (centroid(A_k^ref) + delta) ||_1

where A^ref is the map of the same sample generated without the edit, at the same step. Each step then follows
the energy's descent direction, in the form of classifier guidance (guidance.py) with the energy as -log p:

    x0~ = x0_hat - v sigma^2 grad_x g(A(x))        (the paper's eps~ = eps_hat + v sigma_t grad_{x_t} g)

so v = 0 is the plain sampler. The wrappers here take any denoiser whose network has cross-attention layers with
`probs(x, context) -> (N, heads, H*W, K)` (models/token_unet.py); under classifier-free guidance (`guidance.cfg`)
the maps are read from the first len(x) rows of its doubled batch, the conditional half.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError, bad, real

Tensor = torch.Tensor


def attention_maps(probs: list[Tensor], size: int) -> Tensor:
    """Token maps (N, K, size, size) from the probabilities of one or more cross-attention layers, each
    (N, heads, H*W, K) over a square grid: averaged over heads, bilinearly resized to `size`, averaged over layers."""
    out = []
    for p in probs:
        n, _, hw, k = p.shape
        side = math.isqrt(hw)
        a = p.float().mean(1).transpose(1, 2).reshape(n, k, side, side)
        out.append(F.interpolate(a, size=(size, size), mode="bilinear", align_corners=False) if side != size else a)
    return torch.stack(out).mean(0)


def centroid(maps: Tensor) -> Tensor:
    """The centre of mass (N, K, 2) of each map, as (x, y) in [0, 1] (x to the right, y down): sum_ij A_ij (j, i) /
    sum_ij A_ij, with pixel centres at (j + 0.5) / W."""
    h, w = maps.shape[-2:]
    ys = (torch.arange(h, device=maps.device, dtype=maps.dtype) + 0.5) / h
    xs = (torch.arange(w, device=maps.device, dtype=maps.dtype) + 0.5) / w
    mass = maps.sum((-2, -1)).clamp(min=1e-12)
    return torch.stack([(maps.sum(-2) * xs).sum(-1), (maps.sum(-1) * ys).sum(-1)], -1) / mass[..., None]


def soft_threshold(maps: Tensor, sharpness: float = 10.0) -> Tensor:
    """Each map scaled to [0, 1] (min-max over its pixels), then a sigmoid around 0.5 with slope `sharpness`: a
    differentiable stand-in for "the pixels this token owns"."""
    lo = maps.amin((-2, -1), keepdim=True)
    hi = maps.amax((-2, -1), keepdim=True)
    return torch.sigmoid(sharpness * ((maps - lo) / (hi - lo).clamp(min=1e-12) - 0.5))


def size(maps: Tensor, sharpness: float = 10.0) -> Tensor:
    """The share of the image (N, K) each token owns: the mean of its soft-thresholded map."""
    return soft_threshold(maps, sharpness).mean((-2, -1))


def permuted(maps: Tensor, generator: torch.Generator) -> Tensor:
    """The maps with their pixels shuffled by one fixed permutation: the same values, no spatial meaning (the
    control that asks whether it is the map's geometry that moves the object)."""
    h, w = maps.shape[-2:]
    perm = torch.randperm(h * w, generator=generator).to(maps.device)
    return maps.flatten(-2)[..., perm].reshape(maps.shape)


def move_energy(reference: list[Tensor], token: int, shift: tuple[float, float], *, scramble: int | None = None):
    """The energy of moving token `token` by `shift` = (dx, dy) (fractions of the image): at call i, the L1
    distance of its map's centroid to the reference run's centroid at the same call plus the shift. `reference`
    holds the reference run's maps per call (`recorder`). scramble=seed: both maps pixel-permuted (the control)."""
    target_shift = torch.tensor(shift, dtype=torch.float32)

    def energy(maps: Tensor, i: int) -> Tensor:
        ref = reference[i].to(maps.device)
        if scramble is not None:
            g = torch.Generator().manual_seed(scramble)
            maps, ref = permuted(maps, g), permuted(ref, torch.Generator().manual_seed(scramble))
        target = centroid(ref)[:, token] + target_shift.to(maps.device)
        return (centroid(maps)[:, token] - target).abs().sum(-1)

    return energy


def resize_energy(reference: list[Tensor], token: int, factor: float, sharpness: float = 10.0):
    """The energy of scaling token `token`'s area by `factor`: at each call, the absolute difference between
    size(A_k) and factor * size(A_k^ref)."""
    def energy(maps: Tensor, i: int) -> Tensor:
        ref = reference[i].to(maps.device)
        return (size(maps, sharpness)[:, token] - factor * size(ref, sharpness)[:, token]).abs()

    return energy


def _check(denoiser, layers, size_, scale=0.0) -> None:
    if not callable(denoiser):
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser D(x, sigma, cond), e.g. dr.zoo.denoiser(name)")
    if not isinstance(layers, (list, tuple)) or not layers or not all(
            getattr(m, "attends_to_context", False) and hasattr(m, "register_forward_hook") for m in layers):
        raise bad(InputError, "layers", layers, "pass a list of cross-attention layers with probs(x, context), e.g. "
                  "list(D.net.cross_layers().values()) of the token U-Net")
    if not isinstance(size_, int) or size_ < 1:
        raise bad(InputError, "size", size_, "pass the side of the common map grid in pixels, e.g. 16")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite number (0 = unguided)")


def _maps_of_call(denoiser, layers, x, sigma, cond, size_: int):
    """(x0_hat, maps of the first len(x) rows): one call with hooks that recompute each layer's probabilities."""
    probs = []
    hook = lambda mod, args, out: probs.append(mod.probs(*args)[:len(x)])
    hooks = [m.register_forward_hook(hook) for m in layers]
    try:
        x0 = denoiser(x, sigma, cond)
    finally:
        for h in hooks:
            h.remove()
    return x0, attention_maps(probs, size_)


def recorder(denoiser, layers, *, size: int = 16):
    """(wrapped, maps): the denoiser unchanged, with the token maps of every call appended to the list `maps`
    (detached, on the CPU): the reference run of an edit."""
    _check(denoiser, layers, size)
    maps: list[Tensor] = []

    def wrapped(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        x0, a = _maps_of_call(denoiser, layers, x, sigma, cond, size)
        maps.append(a.detach().cpu())
        return x0

    return wrapped, maps


def self_guidance(denoiser, layers, energy, scale: float, *, size: int = 16, sigma_min: float = 0.0,
                  norm_like=None):
    """Self-guidance around `denoiser` with `energy(maps, i) -> (N,)` at the i-th call (module docstring): the
    prediction x0_hat - scale sigma^2 grad_x energy, the energy of the maps of `layers` on a common size x size
    grid. Steps with sigma below `sigma_min` are left plain (the paper guides the early part of sampling, where
    layout is decided). One forward and one backward pass per step; at scale 0 the plain prediction.

    norm_like: another energy; each sample's gradient is rescaled to the norm of that energy's gradient (a second
    backward pass), so that a control energy pushes exactly as hard as the edit it controls for."""
    _check(denoiser, layers, size, scale)
    calls = [0]

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        i = calls[0]
        calls[0] += 1
        sigma = torch.as_tensor(sigma, device=x.device).expand(len(x))
        if scale == 0 or bool((sigma < sigma_min).all()):
            return denoiser(x, sigma, cond)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0, maps = _maps_of_call(denoiser, layers, xg, sigma, cond, size)
            grad = torch.autograd.grad(energy(maps, i).sum(), xg, retain_graph=norm_like is not None)[0]
            if norm_like is not None:
                target = torch.autograd.grad(norm_like(maps, i).sum(), xg)[0]
                norm = lambda g: g.flatten(1).norm(dim=1).reshape(-1, *([1] * (g.dim() - 1)))
                grad = grad * norm(target) / norm(grad).clamp(min=1e-12)
        active = (sigma >= sigma_min).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        s2 = (sigma.to(x.dtype) ** 2).reshape(active.shape)
        return x0.detach() - float(scale) * active * s2 * grad.to(x.dtype)

    return guided
