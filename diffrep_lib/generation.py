"""Generating sample sets with a zoo model: noise grids, batching, conditioning (ch. 1 and later).

`sample_set` is the memoised entry point used by chapters: the result depends only on its arguments and
the model's identity, so nbval's second execution reads it from disk.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from . import denoisers, memo, samplers, schedules, zoo

Tensor = torch.Tensor


def sigma_grid(denoiser, steps: int, kind: str = "karras") -> Tensor:
    """`steps` decreasing noise levels inside the model's range, then 0.

    'karras' (Karras et al. 2022, rho = 7) spends the steps where they matter for every sampler here;
    'trailing' takes the network's own timesteps (diffusers' trailing spacing).
    """
    if kind == "karras":
        return schedules.sigmas_karras(steps, denoiser.sigma_min, denoiser.sigma_max)
    if kind == "trailing":
        ts = schedules.timesteps(len(denoiser.sigmas), steps, "trailing")
        return torch.cat([denoiser.sigmas[ts].cpu(), torch.zeros(1, dtype=torch.float64)])
    raise ValueError(f"unknown grid {kind!r}; choose 'karras' or 'trailing'")


def generate(denoiser, n: int, *, sampler: str, sigmas: Tensor, cond: Tensor | None = None, seed: int = 0,
             batch: int = 500, bf16: bool = False, shape=(1, 28, 28), device: str = "cpu") -> Tensor:
    """n samples (n, *shape) in [-1, 1]: initial noise from one seeded generator (so sample i does not
    depend on the batch size for deterministic samplers), then `sampler` over the noise levels `sigmas`."""
    sample = samplers.SAMPLERS[sampler]
    g = torch.Generator().manual_seed(seed)
    x_T = sigmas[0] * torch.randn((n, *shape), generator=g, dtype=torch.float64)
    out = []
    amp = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with amp:
        for i in range(0, n, batch):
            gb = torch.Generator(device=device).manual_seed(seed * 100_003 + i)
            c = cond[i:i + batch].to(device) if cond is not None else None
            xb = x_T[i:i + batch].float().to(device)
            out.append(sample(denoiser, xb, sigmas, cond=c, generator=gb).float().cpu())
    return torch.cat(out).clamp(-1, 1)


def device_for(profile: str) -> str:
    """Where a profile's evaluations run: the GPU for `full` when there is one, else the CPU."""
    return "cuda" if profile == "full" and torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=8)
def zoo_denoiser(name: str, profile: str, seed: int = 0):
    """The zoo denoiser, loaded once per process."""
    return zoo.denoiser(name, profile, seed)


def balanced_labels(n: int, num_classes: int = 10) -> Tensor:
    """0, 1, ..., 9, 0, 1, ...: n labels with every class equally often (up to one)."""
    return torch.arange(n) % num_classes


def _sample_set(model: str, profile: str, model_seed: int, sampler: str, nfe: int, n: int, seed: int,
                grid: str, bf16: bool) -> dict:
    device = device_for(profile)
    D = zoo_denoiser(model, profile, model_seed).to(device)
    y = balanced_labels(n)
    sigmas = sigma_grid(D, samplers.steps_for_nfe(sampler, nfe), grid)
    x = generate(denoisers.clip_x0(D), n, sampler=sampler, sigmas=sigmas, cond=y, seed=seed, bf16=bf16,
                 batch=2500 if device == "cuda" else 500, device=device)
    return {"x": x, "y": y}


def sample_set(model: str, profile: str, *, sampler: str, nfe: int, n: int, seed: int = 0,
               model_seed: int = 0, grid: str = "karras", bf16: bool = True) -> dict:
    """Class-balanced conditional samples {'x': (n, 1, 28, 28), 'y': (n,)} from a zoo model, x0 clipped
    to [-1, 1]; memoised on disk."""
    return memo.cached(_sample_set, model, profile, model_seed, sampler, nfe, n, seed, grid, bf16,
                       deps=(zoo.model_id(model, profile, model_seed),))
