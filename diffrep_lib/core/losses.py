"""Training losses of the diffusion core (survey Eq. 7; ch. 1): the forward process applied to a batch and DDPM's
L_simple as per-sample terms. Losses return a dict of per-sample terms; how terms are weighted is the training
step's business (`zoo.training.objective`).

Notation: x0 clean images, t timesteps in 0..T-1, abar the cumulative product of alphas, eps Gaussian noise,
y condition ids with `null` the id of "no condition".
"""
from __future__ import annotations

import torch

from . import forward_process, parameterisation

Tensor = torch.Tensor


def drop_labels(y: Tensor, p: float, null: int, generator=None) -> Tensor:
    """Replace each label by the null label with probability p (condition dropout, Ho & Salimans 2022)."""
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null), y)


def noised(x0: Tensor, abar: Tensor, prediction: str, generator=None, t: Tensor | None = None):
    """The forward process for one batch: t ~ U{0..T-1} (or the given t), eps ~ N(0, I),
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. Returns (x_t, t, the parameterisation's target)."""
    n = x0.shape[0]
    if t is None:
        t = torch.randint(0, len(abar), (n,), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    x_t = forward_process.q_sample(x0, t, abar, eps)
    a = forward_process.per_sample(abar.to(x0.device)[t], x0)
    return x_t, t, parameterisation.target(prediction, x0, eps, a.sqrt(), (1 - a).sqrt())


def denoising_terms(net, x0: Tensor, y: Tensor | None, *, abar: Tensor, prediction: str,
                    p_uncond: float = 0.0, null: int | None = None, generator=None,
                    t: Tensor | None = None) -> dict[str, Tensor]:
    """DDPM's L_simple (survey Eq. 7) with the target of the network's parameterisation,
    ||target - net(x_t, t)||^2 averaged over pixels; labels are dropped to `null` with probability p_uncond."""
    x_t, t, tgt = noised(x0, abar, prediction, generator, t)
    if y is not None and null is not None and p_uncond > 0:
        y = drop_labels(y, p_uncond, null, generator)
    out = net(x_t, t, y) if y is not None else net(x_t, t)
    return {"denoise": (out - tgt).pow(2).flatten(1).mean(1)}


@torch.no_grad()
def loss_by_timestep(net, x0: Tensor, y: Tensor | None, *, abar: Tensor, prediction: str, ts, seed: int = 0) -> Tensor:
    """L_simple's per-step term E||target - net(x_t, t)||^2 at each timestep in `ts` (ch. 1), (len(ts),)."""
    g = torch.Generator().manual_seed(seed)
    n = len(x0)
    return torch.stack([denoising_terms(net, x0, y, abar=abar, prediction=prediction, generator=g,
                                        t=torch.full((n,), int(t)))["denoise"].mean() for t in ts])
