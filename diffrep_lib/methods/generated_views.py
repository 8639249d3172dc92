"""Generated views for self-supervised learning (Ayromlou et al. 2024; the survey's Eq. 18) as a zoo method:

    T_0(x) = G(x) with probability p_0, otherwise x;   then SimCLR's augmentations on T_0(x)

for the second view of each image, so that a positive pair can differ by more than a crop and a jitter. The
paper's G is an image-conditioned generator (Stable Diffusion's image variations, IC-GAN); here G is SDEdit
through the book's unconditional U-Net (`synthetic.sdedit`: the image noised to sigma and redrawn). As in the
paper the generated images are made once, before training: the method's training set is a pool of training
images with their generated views along the channels, (N, 2, 28, 28).

Recipe options: 'pool' (images, default 10,000), 'p0' (0: plain SimCLR on the pool), 'views' ('sdedit', or
'sample': an unconditional sample drawn from pure noise, which has nothing to do with the image, the control a
generated positive must beat), 'sigma' (SDEdit's level, default 1.5), 'steps' (its sampler steps, default 8).
The teacher (`recipe.teacher`) is the generator. Evaluated like SimCLR (linear probe and k-NN).
"""
from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import data
from ..core import samplers
from ..core.sampling import generate, sigma_grid
from ..errors import InputError, bad
from ..support.runtime import inference_batch, progress_enabled
from ..zoo import api, registry
from ..zoo.recipes import option
from . import simclr, synthetic

VIEWS = ("sdedit", "sample")
CHUNK = 500                      # images per generation call (a progress bar step)


def _check(r) -> str:
    views = option(r, "views", "sdedit")
    if views not in VIEWS:
        raise bad(InputError, "views", views, f"set the recipe option 'views' to one of {VIEWS}")
    return views


def view_pool(r) -> tuple[Tensor, Tensor]:
    """(x, y): option(r, 'pool') training images in the seed's order with their generated views along the channels
    (N, 2, 28, 28); with p0 = 0 the second channel repeats the image (no generator is run). The generator is the
    teacher's shipped training seed (0) whatever the recipe's seed: it stands for a model trained elsewhere, and a
    second seed of the encoder varies the pool, the views' noise and SimCLR, not the generator."""
    views = _check(r)
    x, y = data.training_tensors(r.data)
    g = torch.Generator().manual_seed(r.seed)
    idx = torch.randperm(len(x), generator=g)[:option(r, "pool", 10000)]
    x, y = x[idx], y[idx]
    if option(r, "p0", 0.5) == 0:
        return torch.cat([x, x], dim=1), y
    G = api.denoiser(r.teacher, r.profile)
    out = torch.empty_like(x)
    grid = sigma_grid(G, samplers.steps_for_nfe("dpmpp_2m", 10))
    for i in tqdm(range(0, len(x), CHUNK), desc=f"{r.name}: views", disable=not progress_enabled()):
        chunk = x[i:i + CHUNK]
        if views == "sdedit":
            step = inference_batch("cpu")
            out[i:i + CHUNK] = torch.cat([synthetic.sdedit(G, chunk[j:j + step], option(r, "sigma", 1.5),
                                                           steps=option(r, "steps", 8), generator=g)
                                          for j in range(0, len(chunk), step)])
        else:
            out[i:i + CHUNK] = generate(G, len(chunk), sampler="dpmpp_2m", sigmas=grid, seed=r.seed * 100_003 + i,
                                        batch=inference_batch("cpu"))
    return torch.cat([x, out], dim=1), y


def generated_view_terms(net, x: Tensor, y=None, *, recipe, generator=None, temperature: float = 0.2,
                         **_) -> dict[str, Tensor]:
    """SimCLR's NT-Xent where the second view's source is the generated image with probability p0 (Eq. 18)."""
    image, made = x[:, :1], x[:, 1:]
    swap = torch.rand(len(x), generator=generator).to(x.device) < option(recipe, "p0", 0.5)
    source = torch.where(swap[:, None, None, None], made, image)
    v1, v2 = simclr.augment(image, generator), simclr.augment(source, generator)
    z = net.head(net(torch.cat([v1, v2])).mean(1))
    return {"nt_xent": simclr.nt_xent(*z.chunk(2), temperature)}


registry.register(registry.METHODS, "contrastive_generated",
                  registry.Method(terms=generated_view_terms, evaluate=simclr.probe_embeddings, data=view_pool))
