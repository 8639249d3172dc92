"""Noise schedules of discrete-time VP diffusion and their continuous VE view (survey §2.1; ch. 1).

Notation (the survey's, which follows DDPM)::

    beta_t        variance added at step t            alpha_t = 1 - beta_t
    abar_t        prod_{s<=t} alpha_s                 x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps   (Eq. 3)
    sigma         VE noise level, sigma^2 = (1 - abar) / abar, so x_t / sqrt(abar_t) = x0 + sigma eps
    snr           abar / (1 - abar) = 1 / sigma^2

Everything is computed in float64 and cast by the caller; index t runs 0..T-1 as in `diffusers`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import GridError, bad, check_int

Tensor = torch.Tensor


def betas_linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Linear beta schedule of Ho et al. 2020 (DDPM), float64, shape (T,)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def betas_cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Cosine schedule of Nichol & Dhariwal 2021, Eq. 17 (`squaredcos_cap_v2` in diffusers)."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s)."""
    return torch.cumprod(1.0 - betas.double(), dim=0)


def sigma_from_abar(abar: Tensor) -> Tensor:
    """VE noise level of a VP marginal: sigma = sqrt((1 - abar) / abar)."""
    return ((1 - abar) / abar).sqrt()


def abar_from_sigma(sigma: Tensor) -> Tensor:
    """Inverse of `sigma_from_abar`: abar = 1 / (1 + sigma^2)."""
    return 1 / (1 + sigma**2)


def vp_coefficients(sigma: Tensor) -> tuple[Tensor, Tensor]:
    """(alpha, s) with x_vp = alpha x0 + s eps for the VE level sigma; alpha^2 + s^2 = 1."""
    alpha = (1 + sigma**2).rsqrt()
    return alpha, sigma * alpha


def snr(abar: Tensor) -> Tensor:
    """Signal-to-noise ratio abar / (1 - abar) (Kingma et al. 2021)."""
    return abar / (1 - abar)


def log_snr(abar: Tensor) -> Tensor:
    return torch.log(snr(abar))


def sigma_to_t(sigma: Tensor, sigmas: Tensor) -> Tensor:
    """Fractional timestep of a noise level, by linear interpolation of log sigma over the table `sigmas`.

    Exact at the table's entries, so a network trained on integer t sees integer t when sampled on
    its own grid (k-diffusion's DiscreteSchedule does the same).
    """
    log_sigmas = sigmas.log().to(sigma.device)
    log_sigma = sigma.double().clamp(min=sigmas[0].item(), max=sigmas[-1].item()).log()
    idx = torch.searchsorted(log_sigmas, log_sigma.contiguous()).clamp(1, len(sigmas) - 1)
    lo, hi = log_sigmas[idx - 1], log_sigmas[idx]
    w = (log_sigma - lo) / (hi - lo)
    return (idx - 1 + w).to(sigma.dtype)


SPACINGS = ("trailing", "leading", "linspace")


def timesteps(T: int, n: int, spacing: str = "trailing") -> Tensor:
    """n of the T training steps, descending, exactly as diffusers' `timestep_spacing` options choose them.

    Computed in float64 numpy, as diffusers does: torch's float32 arange and linspace round some steps the other
    way (trailing at n = 48, linspace at n = 27 of T = 1000).
    """
    if spacing not in SPACINGS:
        raise bad(GridError, "spacing", spacing, f"choose one of {SPACINGS}")
    T = check_int(T, "T", "pass the number of training steps, len(abar)", kind=GridError)
    n = check_int(n, "n", f"take between 1 and T = {T} steps", high=T, kind=GridError)
    if spacing == "trailing":       # Lin et al. 2024: start at t = T-1 so the first step sees pure noise
        ts = np.round(np.arange(T, 0, -T / n)) - 1
    elif spacing == "leading":      # DDIM's original choice
        ts = (np.arange(0, n) * (T // n)).round()[::-1]
    else:
        ts = np.linspace(0, T - 1, n).round()[::-1]
    return torch.from_numpy(ts.astype(np.int64).copy())



def sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """n noise levels of Karras et al. 2022, Eq. 5, followed by 0 (float64, shape (n+1,))."""
    n = check_int(n, "n", "pass a positive number of noise levels", kind=GridError)
    if not (0 < sigma_min < sigma_max < math.inf):
        raise bad(GridError, "(sigma_min, sigma_max)", (sigma_min, sigma_max),
                  "pass 0 < sigma_min < sigma_max, finite (a VPDenoiser's .sigma_min and .sigma_max)")
    if not rho > 0:
        raise bad(GridError, "rho", rho, "pass a positive rho (Karras et al. use 7)")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def sigmas_from_timesteps(abar: Tensor, ts: Tensor) -> Tensor:
    """The VE noise levels of discrete timesteps `ts`, followed by 0 (the clean end of a sampler)."""
    return torch.cat([sigma_from_abar(abar[ts]), torch.zeros(1, dtype=torch.float64)])


SCHEDULES = {"linear": betas_linear, "cosine": betas_cosine}
