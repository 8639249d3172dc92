"""Generative augmentation (survey §3.1.6): a class-conditional diffusion model as a source of labelled training
images for a discriminative learner, and the classical augmentation it competes with.

    scales_per_image(n, scales, seed)       # MA-ZSC's diversity trick: a guidance scale drawn for every image
    generate_labelled(denoiser, per_class=50, scales=(2.0,), seed=0, sigmas=grid)   # {'x', 'y', 'scale'}
    shift_flip(x, generator)                 # the classical alternative: shifts of up to 2 pixels, mirror images
    sdedit(denoiser, x, sigma=1.5)           # an image noised to sigma and redrawn: a generated view of it (Eq. 18)

The generated set is balanced (image i shows class i mod 10) and seeded: the same arguments give the same images
whatever the batch size. Classifier-free guidance at scale s uses eps_hat = eps_null + s (eps_y - eps_null);
s = 1 is the conditional model itself and costs one network pass per step instead of two.

Shipard et al. (MA-ZSC, 2023) draw an integer scale in [1, 5] for diversity; their released script draws it once per
run, the paper's intent is per image, which is what `scales_per_image` does.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from ..core import denoisers, guidance, samplers, schedules
from ..core.sampling import balanced_labels, generate
from ..errors import InputError, bad, check_int, real

SHIFT = 2                 # shift_flip's largest translation, in pixels


def scales_per_image(n: int, scales: tuple, seed: int) -> Tensor:
    """(n,) guidance scales, each drawn uniformly from `scales` by a generator seeded with `seed`; a single scale
    is used for every image."""
    check_int(n, "n", "pass a positive number of images")
    if not isinstance(scales, tuple) or not scales or not all(real(s) and s >= 0 for s in scales):
        raise bad(InputError, "scales", scales, "pass a non-empty tuple of guidance scales >= 0, e.g. (2.0,) or "
                  "(1.0, 2.0, 3.0, 4.0, 5.0)")
    table = torch.tensor(scales, dtype=torch.float64)
    pick = torch.randint(len(scales), (n,), generator=torch.Generator().manual_seed(seed))
    return table[pick]


def generate_labelled(denoiser, *, per_class: int, scales: tuple, seed: int, sigmas: Tensor, sampler: str = "dpmpp_2m",
                      num_classes: int = 10, batch: int = 32, bf16: bool = False, device: str = "cpu") -> dict:
    """A balanced labelled set from a class-conditional denoiser with a null label: {'x': (n, 1, 28, 28) in [-1, 1],
    'y': (n,) with image i of class i mod num_classes, 'scale': (n,) its classifier-free guidance scale}, n =
    per_class * num_classes. The images of one scale are drawn together (x0 clipped), each group with its own
    seed, so the set is a function of the arguments alone."""
    check_int(per_class, "per_class", "pass a positive number of images per class")
    null = getattr(getattr(denoiser, "net", None), "null_label", None)
    if null is None:
        raise bad(InputError, "denoiser", denoiser, "pass a class-conditional denoiser with a null label, e.g. "
                  "dr.zoo.denoiser('unet_fmnist'): classifier-free guidance needs the unconditional branch")
    n = per_class * num_classes
    y, s = balanced_labels(n, num_classes), scales_per_image(n, scales, seed)
    x = torch.empty((n, 1, 28, 28))
    for g, scale in enumerate(sorted(set(s.tolist()))):
        idx = (s == scale).nonzero().squeeze(1)
        guided = denoisers.clip_x0(guidance.cfg(denoiser, scale, null))      # scale 1: one pass per step
        x[idx] = generate(guided, len(idx), sampler=sampler, sigmas=sigmas, cond=y[idx],
                          seed=seed * 1000 + g, batch=batch, bf16=bf16, device=device)
    return {"x": x, "y": y, "scale": s}


def shift_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image shifted by up to SHIFT pixels in each direction (zero-padded with the background, -1) and
    mirrored left-right with probability 1/2: the cheap augmentation a synthetic set has to beat."""
    n = len(x)
    padded = F.pad(x, (SHIFT,) * 4, value=-1.0)
    dx, dy = (torch.randint(2 * SHIFT + 1, (n,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(x.shape[-2]))[:, :, None]            # (n, H, 1)
    cols = (dx[:, None] + torch.arange(x.shape[-1]))[:, None, :]            # (n, 1, W)
    out = padded[torch.arange(n)[:, None, None], :, rows, cols].movedim(-1, 1)   # (n, C, H, W)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def sdedit(denoiser, x: Tensor, sigma: float, *, steps: int = 8, generator: torch.Generator | None = None,
           sampler: str = "dpmpp_2m") -> Tensor:
    """SDEdit (Meng et al. 2022): each image noised to level `sigma` (x + sigma * eps, the denoiser's VE scale) and
    carried back to sigma = 0 by `sampler` over `steps` Karras levels below sigma, x0 clipped to [-1, 1]. The result
    keeps what survives the noise (the coarse shape at moderate sigma) and lets the model redraw the rest: a cheap
    instance-conditioned generator, G(x) in the survey's Eq. 18."""
    if not real(sigma) or not denoiser.sigma_min < sigma:
        raise bad(InputError, "sigma", sigma, f"pass a noise level above the denoiser's sigma_min "
                  f"({denoiser.sigma_min:.3g}); about 1 to 3 keeps an image's class")
    check_int(steps, "steps", "pass a positive number of sampler steps")
    grid = schedules.sigmas_karras(steps, denoiser.sigma_min, float(sigma))
    noisy = x + float(sigma) * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    with torch.no_grad():
        return samplers.SAMPLERS[sampler](denoisers.clip_x0(denoiser), noisy, grid).clamp(-1, 1)
