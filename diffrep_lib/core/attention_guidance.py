"""Guidance read from the denoiser's own self-attention, as denoiser wrappers (survey §3.2.3-§3.2.4; ch. 10):
self-attention guidance (SAG, Hong et al. 2023) and perturbed-attention guidance (PAG, Ahn et al. 2024).

SAG asks which regions the network attends to most, blurs its prediction x0_hat there, puts back the same noise,
and steers each step away from what the network predicts from that degraded input. In the VE scaling
x = x0 + sigma eps of the book's denoisers, with M the mask and G a Gaussian blur::

    delta   = M * (G(x0_hat) - x0_hat)            # the degradation of the prediction, on the salient region
    x_bar   = x + delta                           # = (x0_hat + delta) + sigma eps_hat: the same noise, re-applied
    x0_sag  = x0_hat + s (x0_hat + delta - D(x_bar))

which is the paper's eps~ = eps(x_bar) + (1 + s)(eps(x) - eps(x_bar)) written for x0 (the two are the same step;
the official code's `guide_scale` is 1 + s). The blur acts on x0_hat clipped to the data range (clipping after
blurring would let out-of-range values spread into their neighbours): delta is computed from the clipped
prediction and added to the network's own. The mask selects the key positions that receive more than the average
attention: each query's attention sums to 1, so the attention a key receives, summed over queries and averaged over
heads, averages exactly 1 over keys. At s = 0 the wrapper returns the plain prediction, computed once.

The attention module is any layer with `probs(x) -> (N, heads, queries, keys)` over a square grid (the book's
U-Net: `net.get_submodule('mid.1')`); its probabilities are recomputed from the layer's input by a forward hook
during the first call.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError, bad, real

Tensor = torch.Tensor
MASKS = ("attention", "everywhere", "random")   # SAG; the paper's blur-everywhere baseline; a random mask as large


def salient(probs: Tensor, threshold: float = 1.0) -> Tensor:
    """SAG's selection (N, side, side), boolean: the key positions whose received attention (summed over queries,
    averaged over heads) exceeds `threshold`; 1.0 is the average over keys. probs (N, heads, queries, keys)."""
    n, _, _, keys = probs.shape
    side = math.isqrt(keys)
    if side * side != keys:
        raise bad(InputError, "probs", tuple(probs.shape), "pass attention over a square grid of keys")
    return (probs.float().mean(1).sum(1) > threshold).reshape(n, side, side)


def random_like(selected: Tensor, generator: torch.Generator) -> Tensor:
    """A random selection with as many positions per sample as `selected` (N, side, side): the control for where."""
    n = len(selected)
    flat = selected.reshape(n, -1)
    ranks = torch.rand(flat.shape, generator=generator).argsort(1).argsort(1)
    return (ranks < flat.sum(1, keepdim=True).cpu()).reshape(selected.shape).to(selected.device)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """A separable Gaussian blur of images (N, C, H, W), kernel 2 ceil(2 sigma) + 1 wide, reflecting at the borders."""
    radius = max(1, math.ceil(2 * sigma))
    u = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-u ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _check_sag(denoiser, attention, scale, blur_sigma, mask) -> None:
    if not callable(denoiser):
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser D(x, sigma, cond), e.g. dr.zoo.denoiser(name)")
    if not hasattr(attention, "probs") or not hasattr(attention, "register_forward_hook"):
        raise bad(InputError, "attention", attention, "pass the self-attention layer to read, a module with "
                  "probs(x), e.g. D.net.get_submodule('mid.1') of the book's U-Net")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite number (0 = unguided)")
    if not real(blur_sigma) or blur_sigma <= 0:
        raise bad(InputError, "blur_sigma", blur_sigma, "pass the blur's standard deviation in pixels, > 0")
    if mask not in MASKS:
        raise bad(InputError, "mask", mask, f"choose one of {MASKS}")


def self_attention_guidance(denoiser, attention, scale: float, *, blur_sigma: float = 1.0, mask: str = "attention",
                            threshold: float = 1.0, seed: int = 0):
    """SAG around `denoiser`, reading the self-attention layer `attention` (module docstring). mask='everywhere'
    blurs the whole prediction (the paper's blur guidance), mask='random' a random region of the salient one's size
    (seeded); both are controls. Two network calls per step: the second needs the first's prediction."""
    _check_sag(denoiser, attention, scale, blur_sigma, mask)
    generator = torch.Generator().manual_seed(seed)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        seen = {}
        hook = attention.register_forward_hook(lambda mod, args, out: seen.__setitem__("a", mod.probs(args[0])))
        try:
            x0 = denoiser(x, sigma, cond)
        finally:
            hook.remove()
        if scale == 0:
            return x0
        selected = salient(seen["a"].detach(), threshold)
        if mask == "everywhere":
            selected = torch.ones_like(selected)
        elif mask == "random":
            selected = random_like(selected, generator)
        m = F.interpolate(selected[:, None].to(x0.dtype), size=x0.shape[-2:], mode="nearest")
        x0c = x0.clamp(-1, 1)                                   # clip before blurring
        delta = m * (gaussian_blur(x0c, blur_sigma) - x0c)
        return x0 + float(scale) * (x0 + delta - denoiser(x + delta, sigma, cond))

    return guided


def _check_pag(denoiser, layers, scale) -> None:
    if not callable(denoiser):
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser D(x, sigma, cond), e.g. dr.zoo.denoiser(name)")
    if not isinstance(layers, (list, tuple)) or not layers or not all(
            hasattr(m, "identity") and hasattr(m, "register_forward_hook") for m in layers):
        raise bad(InputError, "layers", layers, "pass a list of self-attention layers with identity(x), e.g. "
                  "[D.net.get_submodule('mid.1')] of the book's U-Net or [D.net.blocks[3].attn] of its DiT")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite number (0 = unguided)")


def _perturbed_call(denoiser, layers, x, sigma, cond, start: int):
    """One network call on (x, sigma, cond) with rows start: of every layer in `layers` run with identity attention
    (the rows before `start` are computed exactly as without the hooks)."""
    perturb = lambda mod, args, out: torch.cat([out[:start], mod.identity(args[0][start:])])
    hooks = [m.register_forward_hook(perturb) for m in layers]
    try:
        return denoiser(x, sigma, cond)
    finally:
        for h in hooks:
            h.remove()


def pag_combine(x0: Tensor, x0_ptb: Tensor, scale: float) -> Tensor:
    """PAG's rule on two predictions: x0 + s (x0 - x0_ptb), away from the perturbed one. Affine in the prediction,
    so the same s applies to eps (diffusers' `pag_scale`) and to x0."""
    return x0 + float(scale) * (x0 - x0_ptb)


def perturbed_attention_guidance(denoiser, layers, scale: float):
    """PAG around `denoiser`: x0_pag = x0_hat + s (x0_hat - x0_ptb), where x0_ptb is the prediction with the
    self-attention of every layer in `layers` replaced by the identity (each position attends only to itself).
    In the noise parameterisation this is diffusers' eps + s (eps - eps_ptb) with `pag_scale` s; the official code's
    `guide_scale` is 1 + s. One network call per step on a doubled batch, whose second half runs perturbed; at s = 0
    the plain prediction, computed once."""
    _check_pag(denoiser, layers, scale)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if scale == 0:
            return denoiser(x, sigma, cond)
        n = len(x)
        sigma = torch.as_tensor(sigma, device=x.device).expand(n)
        x0, x0_ptb = _perturbed_call(denoiser, layers, torch.cat([x, x]), torch.cat([sigma, sigma]),
                                     torch.cat([cond, cond]) if cond is not None else None, n).chunk(2)
        return pag_combine(x0, x0_ptb, scale)

    return guided


def perturbed_attention_cfg(denoiser, layers, scale: float, cfg_scale: float, null):
    """PAG with classifier-free guidance (Ahn et al. 2024, and diffusers' PAG pipelines):
    x0 = x0_u + w (x0_c - x0_u) + s (x0_c - x0_c_ptb), in guidance.cfg's convention (w = `cfg_scale`, 1: the
    conditional prediction); the PAG term perturbs the conditional branch. One call on a tripled batch
    [conditional, null, conditional perturbed]."""
    _check_pag(denoiser, layers, scale)
    if not real(cfg_scale):
        raise bad(InputError, "cfg_scale", cfg_scale, "pass a finite classifier-free guidance scale (1 = none)")

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise bad(InputError, "cond", None, "PAG with classifier-free guidance needs the requested classes")
        n = len(x)
        sigma = torch.as_tensor(sigma, device=x.device).expand(n)
        x0_c, x0_u, x0_ptb = _perturbed_call(
            denoiser, layers, torch.cat([x, x, x]), torch.cat([sigma, sigma, sigma]),
            torch.cat([cond, torch.full_like(cond, null), cond]), 2 * n).chunk(3)
        return x0_u + float(cfg_scale) * (x0_c - x0_u) + float(scale) * (x0_c - x0_ptb)

    return guided
