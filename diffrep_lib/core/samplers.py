"""Samplers as functions over a decreasing noise-level grid `sigmas` ending in 0 (ch. 1).

Every sampler checks its grid once (`check_grid`): `span='partial'` runs a stretch that stops above 0 (one step),
`span='inverse'` an increasing grid (DDIM inversion, deterministic samplers only).

Every sampler has the signature ``sample_<name>(denoiser, x, sigmas, *, cond=None, callback=None,
generator=None) -> x0`` where x starts as sigmas[0] * noise in the VE scaling x = x0 + sigma n and the
denoiser follows the contract of `denoisers`. `callback` receives a dict per step (i, x, sigma,
sigma_next, x0) so a notebook can watch trajectories without the sampler printing anything.
Notation: sigma_i = sigmas[i]; x0_hat = D(x, sigma_i); d = (x - x0_hat) / sigma_i is the PF-ODE slope dx/dsigma.
"""
from __future__ import annotations

import functools
import math

import torch

from ..errors import GridError, InputError, bad, check_int, real

Tensor = torch.Tensor
_FIX_GRID = ("build one with dr.sampling.sigma_grid(denoiser, steps) or dr.schedules.sigmas_karras(n, sigma_min, "
             "sigma_max)")


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


SPANS = ("to_zero", "partial", "inverse")
DETERMINISTIC = ("euler", "heun", "ddim", "dpmpp_2m")        # the samplers that can run the ODE backwards


def check_grid(sigmas, span: str = "to_zero") -> Tensor:
    """`sigmas` as a float tensor after checking that a sampler can use it: 1-D, at least two levels, finite, and

    span='to_zero' (sampling, the default): strictly decreasing positive levels ending at exactly 0;
    span='partial': strictly decreasing, ending anywhere >= 0 (a stretch of a trajectory, e.g. one step);
    span='inverse': strictly increasing positive levels (DDIM inversion: the ODE run from data to noise).
    Raises GridError otherwise."""
    if span not in SPANS:
        raise bad(GridError, "span", span, f"choose one of {SPANS}")
    if isinstance(sigmas, (list, tuple)) or type(sigmas).__module__ == "numpy":
        try:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise bad(GridError, "sigmas", sigmas, "pass a 1-D sequence of numbers; " + _FIX_GRID) from None
    if not isinstance(sigmas, torch.Tensor):
        raise bad(GridError, "sigmas", sigmas, "pass a 1-D tensor of noise levels; " + _FIX_GRID)
    if not sigmas.is_floating_point():
        sigmas = sigmas.double()
    if sigmas.dim() != 1 or len(sigmas) < 2:
        raise bad(GridError, "sigmas", sigmas, "a grid is 1-D with at least two levels (sigma_max ... 0); " + _FIX_GRID)
    v = sigmas.detach().cpu().double()
    if not torch.isfinite(v).all():
        raise bad(GridError, "sigmas", v.tolist(), "every noise level must be finite; " + _FIX_GRID, "not finite")
    if span == "inverse":
        if (v[0] <= 0) or (v[1:] <= v[:-1]).any():
            raise bad(GridError, "sigmas", v.tolist(), "an inversion grid rises strictly from a positive level "
                      "(sigma = 0 has no slope: start at a small sigma_min)", "not strictly increasing from > 0")
        return sigmas
    if (v[:-1] <= 0).any() or v[-1] < 0 or (v[1:] >= v[:-1]).any():
        raise bad(GridError, "sigmas", v.tolist(), "noise levels must decrease strictly from sigma_max to 0 "
                  "(to run the ODE from data to noise, pass an increasing grid with span='inverse'); " + _FIX_GRID,
                  "not strictly decreasing")
    if span == "to_zero" and v[-1] != 0:
        raise bad(GridError, "sigmas", v.tolist(), "append 0 (torch.cat([sigmas, sigmas.new_zeros(1)])), or pass "
                  "span='partial' to run only this stretch: a grid that stops above 0 returns noisy images",
                  "does not end at 0")
    return sigmas


def _sampler(fn):
    """A sampler's boundary: check x, sigmas and cond once, then run the loop without gradients."""
    name = fn.__name__.removeprefix("sample_")

    @functools.wraps(fn)
    def run(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, span: str = "to_zero", **kwargs):
        if not callable(denoiser):
            raise bad(InputError, "denoiser", denoiser, "pass a callable D(x, sigma, cond) -> x0_hat, e.g. "
                      "dr.zoo.denoiser(name) or dr.denoisers.VPDenoiser(net, abar)")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise bad(InputError, "x", x, "pass the starting noise as a float tensor (N, ...), "
                      "e.g. sigmas[0] * torch.randn(N, 1, 28, 28)")
        if cond is not None and (not isinstance(cond, torch.Tensor) or cond.dim() == 0 or len(cond) != len(x)):
            raise bad(InputError, "cond", cond, f"pass one condition per sample: a tensor of length {len(x)}")
        if callback is not None and not callable(callback):
            raise bad(InputError, "callback", callback, "pass a function of one dict (i, x, sigma, sigma_next, x0), "
                      "or None")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise bad(InputError, "generator", generator, "pass a torch.Generator, e.g. "
                      "torch.Generator().manual_seed(0), or None")
        if "eta" in kwargs and not (real(kwargs["eta"]) and 0 <= kwargs["eta"] <= 1):
            raise bad(InputError, "eta", kwargs["eta"], "choose eta in [0, 1]: 0 is deterministic DDIM, 1 is DDPM's "
                      "posterior")
        if span == "inverse" and (name not in DETERMINISTIC or kwargs.get("eta", 0)):
            raise bad(GridError, "span", span, f"only the deterministic samplers {DETERMINISTIC} (DDIM with eta = 0) "
                      "run the ODE backwards", f"sampler {name}")
        sigmas = check_grid(sigmas, span)
        with torch.no_grad():
            return fn(denoiser, x, sigmas, cond=cond, callback=callback, generator=generator, **kwargs)

    return run


@_sampler
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


@_sampler
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


@_sampler
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
        c = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp(min=0).sqrt()   # 0 upwards
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - c**2).clamp(min=0).sqrt() * eps
        if eta > 0 and sigma_next > 0:
            x_prev = x_prev + c * _randn(x, generator)
        x = x_prev / abar_prev.sqrt()                             # VP -> VE
        _report(callback, i, x, sigma, sigma_next, x0)
    return x


@_sampler
def sample_ddpm(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Ancestral sampling of Ho et al. 2020 (Alg. 2) with the posterior variance ('fixed_small'):
    DDIM's update with eta = 1, which is DDPM's posterior step on any sub-sequence of levels."""
    return sample_ddim.__wrapped__(denoiser, x, sigmas, cond=cond, callback=callback, generator=generator, eta=1.0)


@_sampler
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


@_sampler
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


def _check_name(name: str) -> None:
    if name not in SAMPLERS:
        raise bad(GridError, "name", name, f"choose a sampler of {sorted(SAMPLERS)}")




def nfe(name: str, steps: int) -> int:
    """Network evaluations a sampler spends on `steps` intervals (the last one ends at sigma = 0)."""
    _check_name(name)
    check_int(steps, "steps", "pass a positive integer", kind=GridError)
    return 2 * steps - 1 if name == "heun" else steps


def steps_for_nfe(name: str, budget: int) -> int:
    """The most steps a sampler can take within `budget` network evaluations."""
    _check_name(name)
    check_int(budget, "budget", "pass a positive integer", kind=GridError)
    return (budget + 1) // 2 if name == "heun" else budget


SAMPLERS = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler_maruyama": sample_euler_maruyama,
}
