"""Evaluations during training (ch. 12): the points of a recipe's FID-FM curve, recorded by the zoo every
`recipe.curve_every` steps through `training.train(..., checkpoint=curve_point(recipe))`."""
from __future__ import annotations

import torch

from . import data, denoisers, schedules, training
from .recipes import Recipe


def curve_point(r: Recipe):
    """The checkpoint evaluation of recipe r's training curve: FID-FM and sample accuracy of 1,000 class-balanced
    samples (DPM-Solver++(2M), 10 network evaluations, no guidance, fixed noise) and the held-out denoising loss."""
    from . import generation, metrics, samplers, zoo

    classifier = zoo.get("classifier_fmnist", r.profile).eval()
    x_test, y_test = data.fashion_mnist.tensors("test")
    ref = metrics.gaussian_stats(metrics.features(classifier, x_test[:2000]))
    abar = schedules.alphas_cumprod(schedules.SCHEDULES[r.schedule](r.T))

    @torch.no_grad()
    def point(step: int, model) -> dict:
        net = model.export() if hasattr(model, "export") else model
        device = next(net.parameters()).device
        D = denoisers.VPDenoiser(net, abar.to(device), r.prediction).eval()
        y = generation.balanced_labels(1000)
        sigmas = generation.sigma_grid(D, samplers.steps_for_nfe("dpmpp_2m", 10))
        x = generation.generate(denoisers.clip_x0(D), 1000, sampler="dpmpp_2m", sigmas=sigmas, cond=y, seed=0,
                                batch=1000 if device.type == "cuda" else 500, device=str(device))
        g = torch.Generator(device=device).manual_seed(99)      # the same noise at every checkpoint
        loss = training.denoising_terms(net, x_test[:1000].to(device), y_test[:1000].to(device),
                                        abar=abar.to(device), prediction=r.prediction,
                                        generator=g)["denoise"].mean().item()
        return {"fid": round(metrics.fid_fm(classifier, x, ref), 2),
                "accuracy": round(metrics.sample_accuracy(classifier, x, y), 4), "test_denoise_loss": round(loss, 5)}
    return point
