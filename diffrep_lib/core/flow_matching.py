"""Flow matching on the straight path (rectified flow; Lipman et al. 2023, Liu et al. 2023; survey §4; ch. 13),
behind the one denoiser contract.

The path from data to noise is a straight line in a time t in [0, 1], and the network regresses its velocity:

    x_t = (1 - t) x0 + t eps,        v = d x_t / dt = eps - x0

This is diffusers' convention (`FlowMatchEulerDiscreteScheduler`: its sigma is t, its timestep 1000 t, and the
model predicts noise minus sample, as in Stable Diffusion 3). Dividing by 1 - t puts x_t in the VE scaling of
`denoisers`:

    x = x_t / (1 - t) = x0 + sigma eps,     sigma = t / (1 - t),     t = sigma / (1 + sigma)

and the clean-image estimate is x0_hat = x_t - t v_hat. A velocity network is therefore one more adapter
(`FlowDenoiser`), and every sampler and guidance of the book runs on it. t = 1 is sigma = infinity, so sampling
starts just below it, at T_MAX (the prior there is t * eps up to 0.1% of the image: `sigma_grid`).

Couplings: training pairs each image x0 with a noise eps. Independent pairs are the default; minibatch optimal
transport (`ot_pairing`) and reflow (`reflow_pairs`, the noise and the sample a trained flow makes of it) give
straighter paths (`straightness`), which few-step samplers follow with less error.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GridError, InputError, bad, check_int
from . import samplers
from .denoisers import NoiseRange
from .forward_process import per_sample

Tensor = torch.Tensor

T_MAX = 0.999          # the largest time a sampler starts from: sigma = 999 in the VE scaling
TIME_SCALE = 1000.0    # the network's time input is 1000 t, as diffusers' timesteps


def sigma_from_t(t: Tensor) -> Tensor:
    """The VE noise level of time t in [0, 1): sigma = t / (1 - t)."""
    return t / (1 - t)


def t_from_sigma(sigma: Tensor) -> Tensor:
    """The time of a VE noise level sigma >= 0: t = sigma / (1 + sigma)."""
    return sigma / (1 + sigma)


def interpolate(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) x0 + t eps, with t one time per sample (N,) or a number."""
    t = per_sample(torch.as_tensor(t, dtype=x0.dtype, device=x0.device).expand(x0.shape[0]), x0)
    return (1 - t) * x0 + t * eps


def velocity(x0: Tensor, eps: Tensor) -> Tensor:
    """The regression target on the straight path, v = eps - x0 (the same at every t)."""
    return eps - x0


def to_x0(v: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """The clean-image estimate implied by a velocity at (x_t, t): x0_hat = x_t - t v."""
    return x_t - t * v


def to_eps(v: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """The noise estimate implied by a velocity at (x_t, t): eps_hat = x_t + (1 - t) v."""
    return x_t + (1 - t) * v


def from_x0(x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """The velocity consistent with a clean-image estimate at (x_t, t > 0): v = (x_t - x0) / t."""
    return (x_t - x0) / t


def time_of_abar(abar: Tensor) -> Tensor:
    """The straight path's time s with the signal-to-noise ratio of a VP step abar: (1 - s) / s = sqrt(abar / (1 -
    abar)), i.e. s = sigma / (1 + sigma) with sigma = sqrt((1 - abar) / abar). x_s is then the VP x_t divided by
    sqrt(abar) + sqrt(1 - abar): the same image at the same noise level, scaled."""
    a = torch.as_tensor(abar)
    return (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())


def sigma_grid(steps: int, t_max: float = T_MAX) -> Tensor:
    """`steps` noise levels uniform in t from t_max down to t_max / steps, then 0, as VE sigmas: `steps` equal Euler
    steps in t (Liu et al.'s uniform grid), started at t_max < 1 instead of 1. diffusers' flow-matching scheduler
    spaces its levels from 1 to 1/1000 instead, its last step a short one to 0, and SD3 shifts them towards noise."""
    steps = check_int(steps, "steps", "pass a positive number of steps", kind=GridError)
    if not 0 < t_max < 1:
        raise bad(GridError, "t_max", t_max, "choose 0 < t_max < 1 (t = 1 is sigma = infinity)")
    t = torch.linspace(t_max, t_max / steps, steps, dtype=torch.float64)
    return torch.cat([sigma_from_t(t), torch.zeros(1, dtype=torch.float64)])


class FlowDenoiser(NoiseRange, nn.Module):
    """Wraps a velocity network net(x_t, 1000 t, cond) -> v_hat as a denoiser D(x, sigma, cond) -> x0_hat.

    x in the VE scaling becomes x_t = x / (1 + sigma) at t = sigma / (1 + sigma); the noise range is
    (sigma_from_t(1 / 1000), sigma_from_t(T_MAX)), the range a network trained on t ~ U(0, 1) has seen densely."""

    def __init__(self, net: nn.Module, time_scale: float = TIME_SCALE, t_max: float = T_MAX):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise bad(InputError, "net", net, "pass a velocity network net(x_t, 1000 t[, y]) (an nn.Module)")
        if not 0 < t_max < 1:
            raise bad(InputError, "t_max", t_max, "choose 0 < t_max < 1 (t = 1 is sigma = infinity)")
        self.net, self.time_scale = net, float(time_scale)
        grid = torch.linspace(1 / 1000, t_max, 1000, dtype=torch.float64)
        self.register_buffer("sigmas", sigma_from_t(grid), persistent=False)

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise bad(InputError, "x", x, "pass images as a float tensor (N, C, H, W) in the VE scaling x0 + sigma n")
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float64).expand(x.shape[0])
        if sigma.device.type == "cpu" and (not torch.isfinite(sigma).all() or (sigma < 0).any()):
            raise bad(InputError, "sigma", sigma, "noise levels are finite and >= 0 (VE sigma = t / (1 - t))")
        t = t_from_sigma(sigma)
        x_t = x / per_sample(1 + sigma, x)
        tt = t.to(x.dtype)
        v = self.net(x_t, self.time_scale * tt, cond) if cond is not None else self.net(x_t, self.time_scale * tt)
        if v.shape != x.shape:
            raise bad(InputError, "net", f"an output of shape {tuple(v.shape)} for x of shape {tuple(x.shape)}",
                      "a velocity network predicts a tensor shaped like its input")
        return to_x0(v, x_t, per_sample(tt, x))


def velocity_field(denoiser):
    """The velocity v(x_t, t, cond) of any denoiser D (a diffusion model's too): the field whose Euler steps in t
    are DDIM's steps, v = (x_t - x0_hat) / t with x0_hat = D(x_t / (1 - t), t / (1 - t)). Needs 0 < t < 1."""

    def v(x_t: Tensor, t, cond=None) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64, device=x_t.device).expand(x_t.shape[0])
        if t.device.type == "cpu" and ((t <= 0) | (t >= 1)).any():
            raise bad(InputError, "t", t, "pass times in (0, 1): t = 0 has no noise to remove, t = 1 is sigma = "
                      "infinity")
        tb = per_sample(t, x_t)
        x0 = denoiser((x_t / (1 - tb)).to(x_t.dtype), sigma_from_t(t).to(x_t.dtype), cond)
        return from_x0(x0, x_t, tb.to(x_t.dtype))

    return v


def flow_terms(net, x0: Tensor, y: Tensor | None = None, *, generator=None, t: Tensor | None = None,
               eps: Tensor | None = None, time_scale: float = TIME_SCALE) -> dict[str, Tensor]:
    """Conditional flow matching's loss on the straight path, per sample: t ~ U(0, 1) (or the given t),
    ||(eps - x0) - net(x_t, 1000 t)||^2 averaged over pixels. eps: the noise paired with each image by a coupling
    (`ot_pairing`, `reflow_pairs`); fresh Gaussian noise (the independent coupling) when None."""
    n = x0.shape[0]
    if t is None:
        t = torch.rand(n, generator=generator, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    elif eps.shape != x0.shape:
        raise bad(InputError, "eps", eps, f"pass one noise per image, shaped like x0 {tuple(x0.shape)}")
    x_t = interpolate(x0, eps, t)
    out = net(x_t, time_scale * t, y) if y is not None else net(x_t, time_scale * t)
    return {"flow": (out - velocity(x0, eps)).pow(2).flatten(1).mean(1)}


def ot_pairing(x0: Tensor, eps: Tensor) -> Tensor:
    """Minibatch optimal transport (Tong et al. 2024; Pooladian et al. 2023): eps reordered so that the pairs
    (x0[i], eps[i]) minimise the summed squared distance over the batch (an exact assignment)."""
    from scipy.optimize import linear_sum_assignment
    if eps.shape != x0.shape:
        raise bad(InputError, "eps", eps, f"pass one noise per image, shaped like x0 {tuple(x0.shape)}")
    a, b = x0.flatten(1).double(), eps.flatten(1).double()
    cost = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T     # ||a_i - b_j||^2, no square roots
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return eps[torch.as_tensor(cols, device=eps.device)]


def trajectory(denoiser, x: Tensor, sigmas: Tensor, *, cond=None, sampler=samplers.sample_ddim):
    """The path a sampler takes from x (VE scaling, at sigmas[0]) to its sample, in the straight path's scaling:
    (t (K + 1,), x_t (K + 1, N, ...)), from t = t_from_sigma(sigmas[0]) down to t = 0."""
    sigmas = samplers.check_grid(sigmas)
    steps = [x / (1 + sigmas[0].item())]
    sampler(denoiser, x, sigmas, cond=cond, callback=lambda d: steps.append(d["x"] / (1 + d["sigma_next"])))
    return t_from_sigma(sigmas.double()), torch.stack(steps)


def straightness(ts: Tensor, xs: Tensor) -> float:
    """Liu et al.'s straightness of a path, E int ||(x_1 - x_0) - dx_t/dt||^2 dt / (t_1 - t_0), with dx_t/dt taken
    segment by segment from a trajectory (ts (K + 1,) decreasing, xs (K + 1, N, ...)): 0 for paths that are straight
    lines run at constant speed, larger the more they bend."""
    if xs.shape[0] != len(ts) or len(ts) < 2:
        raise bad(InputError, "xs", xs, f"pass one state per time: {len(ts)} times, at least 2")
    ts = ts.to(xs.dtype)
    dt = (ts[:-1] - ts[1:]).view(-1, *([1] * (xs.dim() - 1)))
    seg = (xs[:-1] - xs[1:]) / dt                                  # each segment's velocity, towards the data
    chord = (xs[0] - xs[-1]) / (ts[0] - ts[-1])
    err = (seg - chord).pow(2).flatten(2).sum(2).mean(1)          # (K,) squared deviation, averaged over samples
    return ((err * dt.flatten()).sum() / (ts[0] - ts[-1])).item()


def reflow_pairs(denoiser, noise: Tensor, steps: int, *, cond=None, t_max: float = T_MAX,
                 sampler=samplers.sample_ddim, batch: int | None = None):
    """Reflow's training pairs (Liu et al. 2023): each Gaussian noise eps with the sample the flow makes of it,
    starting from x_t = t_max eps and solving its ODE over `steps` steps uniform in t (by default Euler in t, i.e.
    DDIM; any deterministic sampler of `core.samplers`, e.g. `sample_dpmpp_2m`, solves the same ODE more closely).
    `batch` images at a time (all when None). Deterministic: the same noise gives the same pairs.
    Returns (x0, eps), for `flow_terms(net, x0, eps=eps)`."""
    grid = sigma_grid(steps, t_max)
    batch = batch or len(noise)
    out = [sampler(denoiser, grid[0].item() * noise[i:i + batch], grid,
                   cond=None if cond is None else cond[i:i + batch]) for i in range(0, len(noise), batch)]
    return torch.cat(out), noise
