"""Sample sets of representation-conditioned generation (RCG; ch. 10), memoised: representations drawn from a
representation diffusion model, and images drawn from a pixel generator told those representations, the
representations of real training images, or nothing.

    reps = rcg_sampling.representation_samples("rdm_simclr", profile, n=300)                  # (300, 128)
    s = rcg_sampling.sample_set("rcg_unet_fmnist", profile, reps="rdm_simclr", n=300, scale=1.5)   # RCG with CFG
"""
from __future__ import annotations

import torch

from .. import zoo
from ..core import denoisers, guidance, samplers
from ..core.precision import bf16_native
from ..core.sampling import generate, sigma_grid
from ..errors import InputError, bad, check_int, real
from ..methods import rcg
from ..support import memo
from ..support.profile import device_for
from ..support.runtime import inference_batch
from ..zoo import recipes
from .generation import zoo_denoiser

SOURCES = ("real", "null")   # besides an RDM's zoo name: real training images' representations, or none
# Representations are drawn from an RDM in pools of at least this many, and a set of n images takes the pool's first
# n: the ancestral sampler's noise depends on how many vectors are drawn together, so without a shared pool the first
# 300 representations of a set of 1,000 would not be those of a set of 300 (sets of different sizes stay paired)
REP_POOL = 1000


def _representation_samples(rdm: str, profile: str, n: int, seed: int, steps: int) -> torch.Tensor:
    D = zoo_denoiser(rdm, profile).to(device_for(profile))
    return rcg.sample_vectors(D, n, seed=seed, steps=steps, device=device_for(profile))


def representation_samples(rdm: str, profile: str, *, n: int, seed: int = 0, steps: int = 50) -> torch.Tensor:
    """n standardised representations (n, D) drawn from the zoo's representation diffusion model `rdm` by
    ancestral sampling over `steps` noise levels (RCG's DDIM with eta = 1); memoised."""
    if recipes.get(rdm).task != "rdm":
        raise bad(InputError, "rdm", rdm, "pass a representation diffusion model of the zoo, e.g. 'rdm_simclr'")
    check_int(n, "n", "pass a positive number of representations")
    return memo.cached(_representation_samples, rdm, profile, n, seed, steps, deps=(zoo.model_id(rdm, profile),))


def real_representations(pixel: str, profile: str, *, n: int, seed: int = 0) -> torch.Tensor:
    """The representations (n, D) of n training images drawn at random (seeded), by the pixel generator's own
    encoder: what RCG's pixel generator was trained on, the check on the RDM's sampled ones."""
    r = recipes.get(pixel, profile)
    reps = rcg.representations(r.teacher, r.profile, "train", init=r.teacher_init)
    return reps[torch.randperm(len(reps), generator=torch.Generator().manual_seed(seed))[:n]]


def _sample_set(pixel: str, profile: str, reps: str, n: int, seed: int, scale: float, nfe: int, bf16: bool) -> dict:
    device = device_for(profile)
    D = zoo_denoiser(pixel, profile).to(device)
    if reps == "null":
        cond = torch.zeros(n, D.net.condition_dim)
    elif reps == "real":
        cond = real_representations(pixel, profile, n=n, seed=seed)
    else:
        cond = representation_samples(reps, profile, n=max(n, REP_POOL), seed=seed)[:n]
    G = D if scale == 1.0 else guidance.cfg(D, scale, D.net.null_label)
    sigmas = sigma_grid(D, samplers.steps_for_nfe("dpmpp_2m", nfe))
    x = generate(denoisers.clip_x0(G), n, sampler="dpmpp_2m", sigmas=sigmas, cond=cond, seed=seed, bf16=bf16,
                 batch=inference_batch(device), device=device)
    return {"x": x, "reps": cond}


def sample_set(pixel: str, profile: str, *, reps: str, n: int, seed: int = 0, scale: float = 1.0,
               nfe: int = 10) -> dict:
    """{'x': (n, 1, 28, 28), 'reps': (n, D)}: images from the pixel generator `pixel` told `reps`: the zoo name of a
    representation diffusion model (its samples, the first n of a pool of at least REP_POOL), 'real' (training
    images' representations) or 'null' (none); classifier-free guided at `scale` on the representation (1: plain),
    DPM-Solver++(2M) with `nfe` evaluations per image (doubled under guidance); memoised."""
    if recipes.get(pixel).task != "denoise_rep":
        raise bad(InputError, "pixel", pixel, "pass a pixel generator told representations, e.g. 'rcg_unet_fmnist'")
    if reps not in SOURCES and (reps not in recipes.RECIPES or recipes.get(reps).task != "rdm"):
        raise bad(InputError, "reps", reps, f"pass an RDM of the zoo (e.g. 'rdm_simclr') or one of {SOURCES}")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite guidance scale (1 = no guidance)")
    if reps == "null":
        scale = 1.0                          # nothing to guide towards
    check_int(n, "n", "pass a positive number of images")
    bf16 = bf16_native(device_for(profile))
    deps = (zoo.model_id(pixel, profile),) + ((zoo.model_id(reps, profile),) if reps not in SOURCES else ())
    return memo.cached(_sample_set, pixel, profile, reps, n, seed, float(scale), nfe, bf16, deps=deps)
