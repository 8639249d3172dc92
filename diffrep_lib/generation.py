"""Generating sample sets with a zoo model: noise grids, batching, conditioning (ch. 1 and later).

`sample_set` is the memoised entry point used by chapters: the result depends only on its arguments and
the model's identity, so nbval's second execution reads it from disk.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from . import denoisers, guidance, memo, samplers, schedules, zoo

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
    if sampler not in samplers.SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(samplers.SAMPLERS)}")
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


def proportional_labels(n: int, counts: tuple) -> Tensor:
    """n condition ids in proportion to `counts` (how often each id occurs in the training data; largest
    remainders round), interleaved so that every batch prefix has roughly the same mix. Self-labelled models are
    sampled this way: cluster sizes are unequal, and uniform ids would change the distribution being matched."""
    c = torch.tensor(counts, dtype=torch.float64)
    if c.dim() != 1 or (c < 0).any() or c.sum() == 0:
        raise ValueError(f"counts must be non-negative with a positive sum, got {counts}")
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
            raise ValueError("labels='null' needs a conditional model with a null id")
        return torch.full((n,), null)
    if isinstance(labels, tuple):
        return proportional_labels(n, labels)
    raise ValueError(f"labels must be 'balanced', 'null' or a tuple of counts, got {labels!r}")


def guided_denoiser(model: str, profile: str, model_seed: int = 0, guide: str | None = None, scale: float = 1.0):
    """The zoo model as a clipped denoiser, optionally wrapped by guidance ('cfg' or 'classifier');
    classifier guidance uses the zoo's noise-aware classifier and the model's null label (unconditional)."""
    device = device_for(profile)
    D = zoo_denoiser(model, profile, model_seed).to(device)
    null = D.net.null_label
    if guide is None:
        G = D
    elif guide == "cfg":
        G = guidance.cfg(D, scale, null)
    elif guide == "classifier":
        clf = zoo_classifier("noisy_classifier_fmnist", profile).to(device)
        G = guidance.classifier_guidance(D, clf, scale, D.sigmas, null=null)
    else:
        raise ValueError(f"unknown guidance {guide!r}; choose None, 'cfg' or 'classifier'")
    return denoisers.clip_x0(G), D


@functools.lru_cache(maxsize=4)
def zoo_classifier(name: str, profile: str):
    return zoo.get(name, profile).eval().requires_grad_(False)


def _sample_set(model: str, profile: str, model_seed: int, sampler: str, nfe: int, n: int, seed: int,
                grid: str, bf16: bool, guide: str | None = None, scale: float = 1.0, labels="balanced") -> dict:
    device = device_for(profile)
    G, D = guided_denoiser(model, profile, model_seed, guide, scale)
    y = condition_ids(labels, n, D.net.null_label)
    sigmas = sigma_grid(D, samplers.steps_for_nfe(sampler, nfe), grid)
    x = generate(G, n, sampler=sampler, sigmas=sigmas, cond=y, seed=seed, bf16=bf16,
                 batch=2500 if device == "cuda" else 500, device=device)
    return {"x": x, "y": y}


def sample_set(model: str, profile: str, *, sampler: str, nfe: int, n: int, seed: int = 0,
               model_seed: int = 0, grid: str = "karras", bf16: bool = True, guide: str | None = None,
               scale: float = 1.0, labels="balanced") -> dict:
    """Conditional samples {'x': (n, 1, 28, 28), 'y': (n,)} from a zoo model, x0 clipped to [-1, 1], optionally
    guided ('cfg' or 'classifier' at `scale`); memoised on disk. `labels`: 'balanced' classes, 'null' (the
    unconditional model) or a tuple of counts per id (cluster sizes, for self-labelled models)."""
    if guide == "cfg" and scale == 1.0:      # CFG at scale 1 is the conditional model: one memo entry for both
        guide = None
    deps = (zoo.model_id(model, profile, model_seed),)
    if guide == "classifier":
        deps += (zoo.model_id("noisy_classifier_fmnist", profile),)
    extra = {} if labels == "balanced" else {"labels": labels}     # keeps the memo keys of earlier chapters
    return memo.cached(_sample_set, model, profile, model_seed, sampler, nfe, n, seed, grid, bf16, guide,
                       float(scale), deps=deps, **extra)


def _ddim_clipping(model: str, profile: str, scale: float, n: int, seed: int, steps: int) -> dict:
    from diffusers import DDIMScheduler

    from . import diffusers_bridge

    D = zoo_denoiser(model, profile).cpu()
    guided = guidance.cfg(D, scale, D.net.null_label)
    amp = torch.autocast("cpu", dtype=torch.bfloat16)            # the network in bf16, the samplers in fp32
    y = balanced_labels(n)
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    out = {"y": y}
    bf16 = lambda f: (lambda x, sigma, cond=None: f(x, sigma, cond).float())
    with amp:
        for name, kwargs in [("eps kept", {}), ("eps recomputed", {"use_clipped_model_output": True})]:
            sch = DDIMScheduler(num_train_timesteps=len(D.sigmas), clip_sample=True, timestep_spacing="trailing")
            out[f"diffusers, {name}"] = diffusers_bridge.sample(bf16(guided), sch, x_T, steps, cond=y,
                                                                step_kwargs=kwargs).clamp(-1, 1)
        sig = sigma_grid(D, steps, "trailing")
        x_ve = x_T * (1 + sig[0] ** 2).sqrt().float()           # the same VP noise, in the VE scaling
        out["library"] = samplers.sample_ddim(denoisers.clip_x0(bf16(guided)), x_ve, sig, cond=y).clamp(-1, 1)
    return out


def ddim_clipping_comparison(model: str, profile: str, *, scale: float, n: int, seed: int = 0, steps: int = 20) -> dict:
    """CFG-guided DDIM with clipped x0_hat, three ways (ch. 3): diffusers keeping the unclipped eps_hat
    (its default), diffusers recomputing eps_hat from the clipped x0_hat, and the library's sample_ddim.
    Same initial noise for all; memoised."""
    return memo.cached(_ddim_clipping, model, profile, float(scale), n, seed, steps,
                       deps=(zoo.model_id(model, profile),))
