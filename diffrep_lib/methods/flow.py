"""Flow matching as zoo methods (Lipman et al. 2023; Liu et al. 2023; Tong et al. 2024; survey §4; ch. 13).

- 'flow': the conditional flow-matching loss on the straight path with independent (image, noise) pairs, the
  labels dropped to the null id as for classifier-free guidance (with a teacher: continued from its weights);
- 'flow_ot': the same loss after pairing each batch's images and noises by minibatch optimal transport;
- 'reflow': one round of rectified flow's reflow: the teacher flow (`recipe.teacher`, at the recipe's seed)
  turns fresh noises into samples by solving its ODE, and a network that starts from the teacher's weights is
  trained on those fixed (sample, noise) pairs.

All three are evaluated by the held-out flow-matching loss, read as denoisers through
`core.flow_matching.FlowDenoiser` (so every sampler and guidance of the book runs on them), and read by
`readout.features` along their straight path.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .. import data
from ..core import denoisers, flow_matching, losses, samplers
from ..core.sampling import balanced_labels
from ..support.runtime import inference_batch, progress_enabled
from ..zoo import api, registry
from ..zoo.recipes import option
from .denoising import conditional, held_out_set

PAIR_SAMPLER = "dpmpp_2m"        # reflow's ODE solver for the pairs, on the uniform-in-t grid
CHUNK = 1000                     # pairs per progress-bar step


def _labels(y, recipe, null, generator):
    y = y if conditional(recipe) else None
    if y is not None and null is not None and recipe.p_uncond > 0:
        y = losses.drop_labels(y, recipe.p_uncond, null, generator)
    return y


def flow_terms(net, x, y, *, recipe, abar=None, null=None, generator=None) -> dict:
    """The per-sample flow-matching loss (`flow_matching.flow_terms`), labels dropped to `null` with probability
    p_uncond. `abar` is not used: the straight path has no noise schedule."""
    return flow_matching.flow_terms(net, x, _labels(y, recipe, null, generator), generator=generator)


def ot_flow_terms(net, x, y, *, recipe, abar=None, null=None, generator=None) -> dict:
    """The flow-matching loss with the batch's noises re-paired to its images by exact minibatch OT."""
    eps = torch.randn(x.shape, generator=generator, device=x.device)
    return flow_matching.flow_terms(net, x, _labels(y, recipe, null, generator), generator=generator,
                                    eps=flow_matching.ot_pairing(x, eps))


def reflow_terms(net, x, y, *, recipe, abar=None, null=None, generator=None) -> dict:
    """The flow-matching loss on reflow's fixed pairs: x holds each sample and its noise side by side in the
    channels (`reflow_data`)."""
    x0, eps = x.chunk(2, dim=1)
    return flow_matching.flow_terms(net, x0, _labels(y, recipe, null, generator), generator=generator, eps=eps)


@torch.no_grad()
def held_out_flow_loss(model, r) -> dict:
    """The flow-matching loss on the held-out set (`denoising.held_out_set`) at fixed times and noise."""
    x, y = held_out_set(model, r)
    terms = flow_matching.flow_terms(model, x, y, generator=torch.Generator().manual_seed(99))
    return {"test_flow_loss": round(terms["flow"].mean().item(), 5)}


def as_denoiser(net, r):
    """The velocity network as a denoiser D(x, sigma, cond) -> x0_hat."""
    return flow_matching.FlowDenoiser(net)


# ------------------------------------------------------------------------------------------------ reflow

def pairs(r, n: int, seed: int):
    """n reflow pairs of recipe r's teacher: (x, y) with x = [sample, noise] along the channels (N, 2C, ...) and y
    the labels the samples were drawn for (balanced, in a seeded order; None for an unconditional teacher). The
    teacher is the recipe's at the same training seed; its ODE is solved with `PAIR_SAMPLER` over
    option(r, 'pair_steps') steps, its x0 clipped to the data range (images). Deterministic given (r, n, seed)."""
    teacher = api.denoiser(r.teacher, r.profile, r.seed)
    g = torch.Generator().manual_seed(seed)
    shape = data.held_out(r.data)[0].shape[1:]
    noise = torch.randn((n, *shape), generator=g)
    y = None
    if conditional(api.recipe(r.teacher, r.profile, r.seed)):
        y = balanced_labels(n, teacher.net.null_label)[torch.randperm(n, generator=g)]
    span = data.value_range(r.data)
    if span is not None:                                     # images: x0 estimates clipped, as the book samples
        teacher = denoisers.clip_x0(teacher, *span)
    x0 = torch.empty_like(noise)
    for i in tqdm(range(0, n, CHUNK), desc=f"{r.name}: pairs", disable=not progress_enabled() or n <= CHUNK):
        c = None if y is None else y[i:i + CHUNK]
        x0[i:i + CHUNK] = flow_matching.reflow_pairs(teacher, noise[i:i + CHUNK], option(r, "pair_steps", 20),
                                                     cond=c, sampler=samplers.SAMPLERS[PAIR_SAMPLER],
                                                     batch=inference_batch("cpu"))[0]
    if span is not None:
        x0 = x0.clamp(*span)
    return torch.cat([x0, noise], dim=1), y


@torch.no_grad()
def reflow_data(r):
    """Reflow's training set: option(r, 'pairs') pairs of the teacher, drawn with the recipe's seed."""
    return pairs(r, option(r, "pairs", 10000), seed=r.seed)


def from_teacher(r, net, *, for_training: bool):
    """A flow recipe with a teacher continues the teacher's training: it starts from its weights (reflow: Liu et al.
    initialise the k-rectified flow from the (k-1)-th; plain flow matching: the same steps spent on independent
    pairs, reflow's control). The stored module is the network alone."""
    if for_training and r.teacher:
        net.load_state_dict(api.get(r.teacher, r.profile, r.seed).state_dict())
    return net


@torch.no_grad()
def held_out_reflow_loss(model, r) -> dict:
    """The held-out flow loss (independent pairs of test images and noise), and the loss on 256 reflow pairs drawn
    from noise that training never saw: how well the network learnt the teacher's coupling."""
    x, y = pairs(r, 256, seed=10_000 + r.seed)
    terms = reflow_terms(model, x, y if conditional(r) else None, recipe=r,
                         generator=torch.Generator().manual_seed(99))
    return {**held_out_flow_loss(model, r), "test_reflow_loss": round(terms["flow"].mean().item(), 5)}


FLOW = registry.Method(terms=flow_terms, evaluate=held_out_flow_loss, denoiser=as_denoiser, path="straight",
                       wrap=from_teacher)
registry.register(registry.METHODS, "flow", FLOW)
registry.register(registry.METHODS, "flow_ot", registry.Method(terms=ot_flow_terms, evaluate=held_out_flow_loss,
                                                              denoiser=as_denoiser, path="straight"))
registry.register(registry.METHODS, "reflow", registry.Method(terms=reflow_terms, evaluate=held_out_reflow_loss,
                                                             denoiser=as_denoiser, path="straight",
                                                             wrap=from_teacher, data=reflow_data))
