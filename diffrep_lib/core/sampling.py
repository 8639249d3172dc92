"""Drawing sample sets with any denoiser (ch. 1 and later): the noise-level grid, seeded initial noise, batching,
and the condition ids of a set. Chapters use the memoised `experiments.generation.sample_set`, which calls these.
"""
from __future__ import annotations

import torch

from ..errors import GridError, InputError, bad, check_int
from . import flow_matching, samplers, schedules
from .precision import bf16_autocast

Tensor = torch.Tensor
GRIDS = ("karras", "trailing", "uniform_t")      # sigma_grid's kinds


def sigma_grid(denoiser, steps: int, kind: str = "karras") -> Tensor:
    """`steps` decreasing noise levels inside the model's range, then 0.

    'karras' (Karras et al. 2022, rho = 7) spends the steps where they matter for every sampler here;
    'trailing' takes the network's own timesteps (diffusers' trailing spacing);
    'uniform_t' is uniform in the straight path's time t = sigma / (1 + sigma), from the model's largest noise
    level (at most t = 0.999) down in equal steps (rectified flow's Euler grid, `flow_matching.sigma_grid`).
    """
    steps = check_int(steps, "steps", "pass a positive number of steps (samplers.steps_for_nfe(name, nfe))",
                      kind=GridError)
    if not all(hasattr(denoiser, a) for a in ("sigma_min", "sigma_max", "sigmas")):
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser that knows its noise range (sigma_min, "
                  "sigma_max, sigmas), e.g. dr.zoo.denoiser(name); for any other, build the grid with "
                  "dr.schedules.sigmas_karras(n, sigma_min, sigma_max)")
    if kind == "karras":
        return schedules.sigmas_karras(steps, denoiser.sigma_min, denoiser.sigma_max)
    if kind == "trailing":
        ts = schedules.timesteps(len(denoiser.sigmas), steps, "trailing")
        return torch.cat([denoiser.sigmas[ts].cpu(), torch.zeros(1, dtype=torch.float64)])
    if kind == "uniform_t":
        t_max = min(flow_matching.T_MAX, float(flow_matching.t_from_sigma(torch.as_tensor(denoiser.sigma_max))))
        return flow_matching.sigma_grid(steps, t_max)
    raise bad(GridError, "kind", kind, f"choose one of {GRIDS}")


def generate(denoiser, n: int, *, sampler: str, sigmas: Tensor, cond: Tensor | None = None, seed: int = 0,
             batch: int = 500, bf16: bool = False, shape=(1, 28, 28), device: str = "cpu") -> Tensor:
    """n samples ``(n, *shape)`` in [-1, 1]: initial noise from one seeded generator (so sample i does not
    depend on the batch size for deterministic samplers), then `sampler` over the noise levels `sigmas`."""
    if sampler not in samplers.SAMPLERS:
        raise bad(GridError, "sampler", sampler, f"choose one of {sorted(samplers.SAMPLERS)}")
    for name, value in (("n", n), ("batch", batch)):
        check_int(value, name, "pass a positive integer")
    check_int(seed, "seed", "pass a non-negative integer seed", low=0)
    if cond is not None and (not isinstance(cond, Tensor) or cond.dim() == 0 or len(cond) != n):
        raise bad(InputError, "cond", cond, f"pass one condition per sample: a tensor of length n = {n}")
    sigmas = samplers.check_grid(sigmas)
    sample = samplers.SAMPLERS[sampler]
    g = torch.Generator().manual_seed(seed)
    x_T = sigmas[0] * torch.randn((n, *shape), generator=g, dtype=torch.float64)
    out = []
    with bf16_autocast(device, bf16):
        for i in range(0, n, batch):
            gb = torch.Generator(device=device).manual_seed(seed * 100_003 + i)
            c = cond[i:i + batch].to(device) if cond is not None else None
            xb = x_T[i:i + batch].float().to(device)
            out.append(sample(denoiser, xb, sigmas, cond=c, generator=gb).float().cpu())
    return torch.cat(out).clamp(-1, 1)


def balanced_labels(n: int, num_classes: int = 10) -> Tensor:
    """0, 1, ..., 9, 0, 1, ...: n labels with every class equally often (up to one)."""
    return torch.arange(n) % num_classes


def proportional_labels(n: int, counts: tuple) -> Tensor:
    """n condition ids in proportion to `counts` (how often each id occurs in the training data; largest
    remainders round), interleaved so that every batch prefix has roughly the same mix. Self-labelled models are
    sampled this way: cluster sizes are unequal, and uniform ids would change the distribution being matched."""
    check_int(n, "n", "pass a non-negative number of ids", low=0)
    c = torch.tensor(counts, dtype=torch.float64)
    if c.dim() != 1 or (c < 0).any() or c.sum() == 0:
        raise bad(InputError, "counts", counts, "pass how often each id occurs: non-negative, with a positive sum")
    share = n * c / c.sum()
    take = share.floor().long()
    take[torch.argsort(share - take, descending=True)[: n - int(take.sum())]] += 1
    ids = torch.repeat_interleave(torch.arange(len(c)), take)
    order = torch.argsort((torch.cat([torch.arange(k) for k in take.tolist()]).double() + 0.5) /
                          torch.repeat_interleave(take, take).double(), stable=True)
    return ids[order]


def condition_ids(labels, n: int, null: int | None) -> Tensor:
    """The conditions of a sample set: 'balanced' (every class equally often), 'null' (the null id: the
    unconditional model, no guidance) or a tuple of id counts (proportional_labels)."""
    if labels == "balanced":
        return balanced_labels(n)
    if labels == "null":
        if null is None:
            raise bad(InputError, "labels", labels, "labels='null' needs a conditional model with a null id; an "
                      "unconditional model takes labels='balanced' (its ids are ignored)")
        return torch.full((n,), null)
    if isinstance(labels, tuple):
        return proportional_labels(n, labels)
    raise bad(InputError, "labels", labels, "pass 'balanced', 'null' or a tuple of counts per id")
