"""The DDPM forward process q(x_t | x0) and its posterior q(x_{t-1} | x_t, x0) (survey §2.1, Eqs. 1-5; ch. 1).

Notation as in `schedules`: betas (T,), abar (T,), integer timesteps t in 0..T-1, x0 and eps of shape (N, ...).
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def per_sample(v: Tensor, like: Tensor) -> Tensor:
    """Per-sample coefficients (N,) reshaped to broadcast against `like` (N, ...), in its dtype."""
    return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: Tensor, t: Tensor, abar: Tensor, eps: Tensor) -> Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, survey Eq. 3."""
    a = abar.to(x0.device)[t]
    return per_sample(a.sqrt(), x0) * x0 + per_sample((1 - a).sqrt(), x0) * eps


def q_posterior(x0: Tensor, xt: Tensor, t: Tensor, abar: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0), Ho et al. 2020 Eqs. 6-7 (survey Eq. 5, typo fixed).

    With beta_t = 1 - abar_t / abar_{t-1} and alpha_t = 1 - beta_t (abar_{-1} = 1):
    mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    var  = (1 - abar_{t-1}) / (1 - abar_t) beta_t.
    Written with abar alone, as diffusers does, so a respaced or float32 schedule gives the same numbers.
    """
    abar = abar.to(xt.device)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    a_t, a_prev = abar[t], abar_prev[t]
    b = 1 - a_t / a_prev
    c0 = a_prev.sqrt() * b / (1 - a_t)
    ct = (1 - b).sqrt() * (1 - a_prev) / (1 - a_t)
    mean = per_sample(c0, x0) * x0 + per_sample(ct, xt) * xt
    var = (1 - a_prev) / (1 - a_t) * b
    return mean, per_sample(var, xt)


def vlb_weights(betas: Tensor) -> Tensor:
    """Per-step weight of ||eps - eps_hat||^2 in the ELBO term L_{t-1} (Ho et al. 2020, Eq. 12).

    L_{t-1} = beta_t^2 / (2 var_t alpha_t (1 - abar_t)) ||eps - eps_hat||^2 with var_t the posterior
    variance; L_simple (survey Eq. 7) drops this weight. At t = 0 the term is the decoder's and the
    posterior variance is zero, so its weight is reported with var_0 = beta_0 (the 'fixed_large' choice).
    """
    abar = torch.cumprod(1 - betas, 0)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    var = (1 - abar_prev) / (1 - abar) * betas
    var[0] = betas[0]
    return betas**2 / (2 * var * (1 - betas) * (1 - abar))
