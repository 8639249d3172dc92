"""Denoising diffusion as a zoo method (survey §2.1; ch. 1): DDPM's L_simple on (optionally conditioned) images,
the held-out denoising loss as its evaluation, the FID-FM curve along training (ch. 12), and human labels as a
condition source. Every denoiser of the book trains through this entry or one that extends it.
"""
from __future__ import annotations

import torch

from .. import data
from ..core import denoisers, losses, metrics, samplers
from ..core.sampling import balanced_labels, generate, sigma_grid
from ..support.runtime import inference_batch
from ..zoo import api, recipes, registry


def conditional(r) -> bool:
    """Whether the recipe's network takes a condition id (a label embedding with a null id)."""
    return bool(getattr(r.model, "num_classes", None))


def denoising_terms(net, x, y, *, recipe, abar, null=None, generator=None) -> dict:
    """L_simple of the recipe's parameterisation, the condition dropped to the null id with probability p_uncond."""
    return losses.denoising_terms(net, x, y if conditional(recipe) else None, abar=abar,
                                  prediction=recipe.prediction, p_uncond=recipe.p_uncond, null=null,
                                  generator=generator)


def held_out_set(model, r):
    """The held-out (x, y) on which recipe r's model is scored: y its labels for a labelled model, the null id for
    one conditioned on self-made ids (clusters are not known for test images), None for an unconditional one."""
    x, y = data.held_out(r.data)
    y = y if conditional(r) else None
    if y is not None and not registry.condition(r.condition).human:
        y = torch.full_like(y, model.null_label)
    return x, y


@torch.no_grad()
def held_out_loss(model, r) -> dict:
    """The fixed-noise denoising loss on the held-out set (`held_out_set`)."""
    x, y = held_out_set(model, r)
    terms = losses.denoising_terms(model, x, y, abar=recipes.abar(r), prediction=r.prediction,
                                   generator=torch.Generator().manual_seed(99))
    return {"test_denoise_loss": round(terms["denoise"].mean().item(), 5)}


def fid_curve(r):
    """The checkpoint evaluation of recipe r's training curve: FID-FM and sample accuracy of 1,000 class-balanced
    samples (DPM-Solver++(2M), 10 network evaluations, no guidance, fixed noise) and the held-out denoising loss."""
    classifier = api.get("classifier_fmnist", r.profile).eval()
    x_test, y_test = data.fashion_mnist.tensors("test")
    ref = metrics.gaussian_stats(metrics.features(classifier, x_test[:2000]))
    abar = recipes.abar(r)

    @torch.no_grad()
    def point(step: int, model) -> dict:
        net = model.export() if hasattr(model, "export") else model
        device = next(net.parameters()).device
        D = denoisers.VPDenoiser(net, abar.to(device), r.prediction).eval()
        y = balanced_labels(1000)
        sigmas = sigma_grid(D, samplers.steps_for_nfe("dpmpp_2m", 10))
        x = generate(denoisers.clip_x0(D), 1000, sampler="dpmpp_2m", sigmas=sigmas, cond=y, seed=0,
                     batch=inference_batch(device), device=str(device))
        g = torch.Generator(device=device).manual_seed(99)      # the same noise at every checkpoint
        loss = losses.denoising_terms(net, x_test[:1000].to(device), y_test[:1000].to(device),
                                      abar=abar.to(device), prediction=r.prediction,
                                      generator=g)["denoise"].mean().item()
        return {"fid": round(metrics.fid_fm(classifier, x, ref), 2),
                "accuracy": round(metrics.sample_accuracy(classifier, x, y), 4), "test_denoise_loss": round(loss, 5)}
    return point


def human_labels(r, x, y):
    """The data set's own labels (None for unlabelled data)."""
    return y


DENOISE = registry.Method(terms=denoising_terms, evaluate=held_out_loss, curve=fid_curve)
registry.register(registry.METHODS, "denoise", DENOISE)
registry.register(registry.CONDITIONS, "labels", registry.Condition(ids=human_labels, human=True))
