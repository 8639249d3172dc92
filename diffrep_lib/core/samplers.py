"""Samplers as functions over a decreasing noise-level grid `sigmas` ending in 0 (ch. 1).

Every sampler has the signature ``sample_<name>(denoiser, x, sigmas, *, cond=None, callback=None,
generator=None) -> x0`` where x starts as sigmas[0] * noise in the VE scaling x = x0 + sigma n and the
denoiser follows the contract of `denoisers`. `callback` receives a dict per step (i, x, sigma,
sigma_next, x0) so a notebook can watch trajectories without the sampler printing anything.
Notation: sigma_i = sigmas[i]; x0_hat = D(x, sigma_i); d = (x - x0_hat) / sigma_i is the PF-ODE slope dx/dsigma.
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _full(sigma: Tensor, x: Tensor) -> Tensor:
    return sigma.to(x.device, x.dtype).expand(x.shape[0])


def _randn(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _report(callback, i, x, sigma, sigma_next, x0):
    if callback is not None:
        callback({"i": i, "x": x, "sigma": float(sigma), "sigma_next": float(sigma_next), "x0": x0})


def prior_noise(shape, sigma_max: float, *, generator=None, device="cpu") -> Tensor:
    """x_T = sigma_max * n, the sampler's starting point."""
    return sigma_max * torch.randn(shape, generator=generator, device=device)


@torch.no_grad()
def sample_euler(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Euler on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, Eq. 4).

    In this scaling one Euler step is exactly a DDIM step with eta = 0 (Song et al. 2021a, §4.3)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _full(sigma, x), cond)
        d = (x - x0) / sigma
        x = x + (sigma_next - sigma) * d
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


@torch.no_grad()
def sample_heun(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Heun's second-order method on the PF ODE, Karras et al. 2022, Alg. 1 (deterministic, no churn).
    Costs two network evaluations per step except the last (an Euler step to sigma = 0)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _full(sigma, x), cond)
        d = (x - x0) / sigma
        x_euler = x + (sigma_next - sigma) * d
        if sigma_next > 0:                       # trapezoid correction with the slope at the end point
            d_next = (x_euler - denoiser(x_euler, _full(sigma_next, x), cond)) / sigma_next
            x = x + (sigma_next - sigma) * (d + d_next) / 2
        else:
            x = x_euler
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


@torch.no_grad()
def sample_ddim(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, eta: float = 0.0):
    """DDIM, Song et al. 2021a, Eq. 12, in VP symbols; eta = 0 is deterministic, eta = 1 is DDPM's posterior.

    With abar = 1 / (1 + sigma^2) for the current (t) and next (prev) level::

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - c^2) eps_hat + c z,
        c = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).

    eps_hat is recomputed from x0_hat, so clipping x0_hat keeps the two consistent.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        abar_t, abar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        x0 = denoiser(x, _full(sigma, x), cond)
        x_t = abar_t.sqrt() * x                                   # VE -> VP
        eps = (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
        c = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).sqrt()
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - c**2).clamp(min=0).sqrt() * eps
        if eta > 0 and sigma_next > 0:
            x_prev = x_prev + c * _randn(x, generator)
        x = x_prev / abar_prev.sqrt()                             # VP -> VE
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


def sample_ddpm(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Ancestral sampling of Ho et al. 2020 (Alg. 2) with the posterior variance ('fixed_small'):
    DDIM's update with eta = 1, which is DDPM's posterior step on any sub-sequence of levels."""
    return sample_ddim(denoiser, x, sigmas, cond=cond, callback=callback, generator=generator, eta=1.0)


@torch.no_grad()
def sample_dpmpp_2m(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """DPM-Solver++(2M), Lu et al. 2022b, Alg. 2, in lambda = -log sigma (data prediction, multistep).

    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - (e^{-h} - 1) D_i with h = lambda_{i+1} - lambda_i and
    D_i = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}, r = h_{i-1} / h_i (first and last steps are first order).
    """
    x0_prev, h_prev = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _full(sigma, x), cond)
        if sigma_next == 0:
            x = x0
        else:
            h = math.log(sigma / sigma_next)
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
            x = (sigma_next / sigma) * x - math.expm1(-h) * d
            h_prev = h
        x0_prev = x0
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


@torch.no_grad()
def sample_euler_maruyama(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Euler-Maruyama on the reverse-time VE SDE (Anderson 1982; Song et al. 2021b, Eq. 6), sigma(t) = t:
    dx = -2 sigma grad log p dsigma + sqrt(2 sigma) dw, stepping sigma down; the last step returns D."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _full(sigma, x), cond)
        if sigma_next == 0:
            x = x0
        else:
            score = (x0 - x) / sigma**2
            dsigma = sigma - sigma_next
            x = x + 2 * sigma * dsigma * score + (2 * sigma * dsigma).sqrt() * _randn(x, generator)
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


def nfe(name: str, steps: int) -> int:
    """Network evaluations a sampler spends on `steps` intervals (the last one ends at sigma = 0)."""
    return 2 * steps - 1 if name == "heun" else steps


def steps_for_nfe(name: str, budget: int) -> int:
    """The most steps a sampler can take within `budget` network evaluations."""
    return (budget + 1) // 2 if name == "heun" else budget


SAMPLERS = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_maruyama": sample_euler_maruyama,
}
