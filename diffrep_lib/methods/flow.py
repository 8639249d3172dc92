"""Flow matching as a zoo method (Lipman et al. 2023; Liu et al. 2023; survey §4; ch. 13): the conditional
flow-matching loss on the straight path with independent (image, noise) pairs, the labels dropped to the null id
as for classifier-free guidance, the held-out flow-matching loss as its evaluation, and the trained velocity
network read as a denoiser through `core.flow_matching.FlowDenoiser`, so every sampler and guidance of the book
runs on it.
"""
from __future__ import annotations

import torch

from ..core import flow_matching, losses
from ..zoo import registry
from .denoising import conditional, held_out_set


def flow_terms(net, x, y, *, recipe, abar=None, null=None, generator=None) -> dict:
    """The per-sample flow-matching loss (`flow_matching.flow_terms`), labels dropped to `null` with probability
    p_uncond. `abar` is not used: the straight path has no noise schedule."""
    y = y if conditional(recipe) else None
    if y is not None and null is not None and recipe.p_uncond > 0:
        y = losses.drop_labels(y, recipe.p_uncond, null, generator)
    return flow_matching.flow_terms(net, x, y, generator=generator)


@torch.no_grad()
def held_out_flow_loss(model, r) -> dict:
    """The flow-matching loss on the held-out set (`denoising.held_out_set`) at fixed times and noise."""
    x, y = held_out_set(model, r)
    terms = flow_matching.flow_terms(model, x, y, generator=torch.Generator().manual_seed(99))
    return {"test_flow_loss": round(terms["flow"].mean().item(), 5)}


def as_denoiser(net, r):
    """The velocity network as a denoiser D(x, sigma, cond) -> x0_hat."""
    return flow_matching.FlowDenoiser(net)


FLOW = registry.Method(terms=flow_terms, evaluate=held_out_flow_loss, denoiser=as_denoiser)
registry.register(registry.METHODS, "flow", FLOW)
