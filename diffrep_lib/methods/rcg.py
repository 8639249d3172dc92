"""Representation-conditioned generation (RCG, Li et al. 2024; survey §3.2.3; ch. 10): generate the representation
first, then the image.

    r = standardise(encoder.pooled(x))       # a frozen self-supervised encoder's embedding, per image
    RDM:   a diffusion model over r           # the representation generator (zoo task 'rdm')
    pixel: eps_theta(x_t, t, r)               # a U-Net told r, r dropped to the null with prob 0.1 ('denoise_rep')
    sample: r ~ RDM, then x ~ pixel(. | r)    # unconditional: no label anywhere

RCG standardises each embedding over its own entries (zero mean, unit standard deviation) before either model sees
it; the same function is applied to training and test embeddings here, and sampled ones are already in that space.
The zoo's condition source 'representation' gives every training image its teacher's standardised embedding.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import data
from ..core import denoisers, losses, metrics, samplers, sampling
from ..zoo import recipes, registry
from . import assignments


def standardise(z: Tensor) -> Tensor:
    """Each row to zero mean and unit standard deviation over its entries (RCG's normalisation of a representation)."""
    z = z.float()
    return (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True)


def representations(encoder: str, profile: str, split: str = "train", *, init: str = "trained") -> Tensor:
    """The standardised pooled embeddings (N, D) of a zoo encoder for every Fashion-MNIST image of a split
    (init='random': the same encoder with random weights, the control)."""
    return standardise(assignments.encoder_features(encoder, profile, split, init=init))


def teacher_representations(r, x, y) -> Tensor:
    """The condition of a pixel generator: its teacher's representation of every training image (labels unused)."""
    return representations(r.teacher, r.profile, "train", init=r.teacher_init)


def drop_rows(c: Tensor, p: float, generator=None) -> Tensor:
    """Each condition vector replaced by the null (zero) vector with probability p (condition dropout)."""
    drop = torch.rand(len(c), generator=generator, device=c.device) < p
    return torch.where(drop[:, None], torch.zeros_like(c), c)


def rep_conditioned_terms(net, x, y, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """L_simple of the U-Net told each image's representation y, dropped with probability p_uncond."""
    y = drop_rows(y, recipe.p_uncond, generator)
    return losses.denoising_terms(net, x, y, abar=abar, prediction=recipe.prediction, generator=generator)


@torch.no_grad()
def pixel_held_out_loss(model, r) -> dict:
    """The fixed-noise denoising loss on 2,000 test images, told their own representation and told none."""
    x, _ = data.held_out(r.data)
    reps = representations(r.teacher, r.profile, "test", init=r.teacher_init)[:len(x)]
    out = {}
    for key, c in (("test_denoise_loss", reps), ("test_denoise_loss_null", torch.zeros_like(reps))):
        terms = losses.denoising_terms(model, x, c, abar=recipes.abar(r), prediction=r.prediction,
                                       generator=torch.Generator().manual_seed(99))
        out[key] = round(terms["denoise"].mean().item(), 5)
    return out


def golden_call(model, x, t, y):
    """The golden fingerprint of a pixel generator: conditioned on fixed standardised vectors."""
    reps = standardise(torch.randn(len(x), model.condition_dim, generator=torch.Generator().manual_seed(5)))
    return model(x, t, reps)


# ------------------------------------------------------------------------- the representation generator (RDM)

def rdm_data(r) -> tuple[Tensor, None]:
    """The RDM's training set: the standardised representations of every training image."""
    return representations(r.teacher, r.profile, "train", init=r.teacher_init), None


def rdm_terms(net, x, y, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """L_simple on representation vectors (RCG predicts x0, the recipe says which)."""
    return losses.denoising_terms(net, x, None, abar=abar, prediction=recipe.prediction, generator=generator)


@torch.no_grad()
def rdm_held_out(model, r) -> dict:
    """The fixed-noise denoising loss on the test set's representations, and the Frechet distance from 2,000 RDM
    samples (ancestral sampling, 50 steps) to the first 5,000 of those representations, with the distance of 2,000
    other real test representations to them as its floor."""
    real = representations(r.teacher, r.profile, "test", init=r.teacher_init)
    terms = losses.denoising_terms(model, real, None, abar=recipes.abar(r), prediction=r.prediction,
                                   generator=torch.Generator().manual_seed(99))
    fake = sample_vectors(denoisers.VPDenoiser(model, recipes.abar(r), r.prediction).eval(), 2000, seed=0)
    stats = metrics.gaussian_stats(real[:5000])
    return {"test_denoise_loss": round(terms["denoise"].mean().item(), 5),
            "frechet": round(metrics.frechet_distance(*metrics.gaussian_stats(fake), *stats), 4),
            "frechet_real": round(metrics.frechet_distance(*metrics.gaussian_stats(real[5000:7000]), *stats), 4)}


def sample_vectors(D, n: int, *, seed: int = 0, steps: int = 50, device: str = "cpu") -> Tensor:
    """n vectors from a vector denoiser: DDPM's ancestral sampler (RCG's DDIM with eta = 1) over `steps` levels of the
    model's Karras grid, not clipped (representations are not images)."""
    g = torch.Generator().manual_seed(seed)
    sigmas = sampling.sigma_grid(D, steps)
    x = sigmas[0] * torch.randn((n, *D.net.input_shape), generator=g, dtype=torch.float64)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    return samplers.sample_ddpm(D, x.float().to(device), sigmas, generator=gen).float().cpu()


registry.register(registry.CONDITIONS, "representation", registry.Condition(ids=teacher_representations))
registry.register(registry.METHODS, "denoise_rep", registry.Method(
    terms=rep_conditioned_terms, evaluate=pixel_held_out_loss, call=golden_call))
registry.register(registry.METHODS, "rdm", registry.Method(terms=rdm_terms, evaluate=rdm_held_out, data=rdm_data))
