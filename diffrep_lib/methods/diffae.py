"""Diffusion autoencoders (DiffAE, Preechakul et al. 2022; survey §3.1.4; ch. 6): an image as two codes.

    z = model.semantic_code(x0)                        # the semantic code: an encoder trained by denoising alone
    x_T = stochastic_code(D, x0, z, steps)             # the rest: the deterministic sampler run backwards
    x0 ~= decode(D, x_T, z, steps)                     # and forwards again: a near-exact reconstruction

The zoo task 'diffae' trains the encoder and the decoder together on L_simple, the decoder told the encoder's code
of the very image it denoises (no condition dropout: the paper samples unconditionally through a separate model of
z_sem, which the book leaves to Chapter 10's representation generator). D is the model behind the denoiser
contract (`zoo.denoiser(name)`), whose `cond` is z.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, bad, check_int
from .. import data
from ..core import losses, samplers, sampling
from ..readout import probes
from ..zoo import recipes, registry
from .rcg import drop_rows


def diffae_terms(net, x, y, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """L_simple of the decoder told the encoder's code of x itself (labels y unused); the gradient reaches the
    encoder through the code. A recipe's p_uncond drops codes to the null vector (DiffAE: 0)."""
    z = drop_rows(net.semantic_code(x), recipe.p_uncond, generator)
    return losses.denoising_terms(net, x, z, abar=abar, prediction=recipe.prediction, generator=generator)


@torch.no_grad()
def semantic_codes(model, x: Tensor, batch: int = 500) -> Tensor:
    """z_sem (N, D) of images x (N, C, H, W) in [-1, 1], in inference mode (BatchNorm with its running statistics)."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model.semantic_code(x[i:i + batch]) for i in range(0, len(x), batch)])
    finally:
        model.train(was)


def _steps(steps) -> int:
    return check_int(steps, "steps", low=1, fix="pass the number of deterministic sampler steps, e.g. 20")


def stochastic_code(D, x0: Tensor, z: Tensor, steps: int) -> Tensor:
    """x_T: DDIM (eta = 0) run from the clean images x0 up to the model's largest noise level, over the levels of
    its `steps`-step Karras grid taken upwards from its smallest (DDIM inversion), told their codes z. In the VE
    scaling of the samplers x_T is about sigma_max times a standard normal draw."""
    sigmas = sampling.sigma_grid(D, _steps(steps))[:-1].flip(0)           # increasing, from sigma_min > 0
    return samplers.sample_ddim(D, x0, sigmas, cond=z, span="inverse")


def decode(D, x_T: Tensor, z: Tensor, steps: int) -> Tensor:
    """The image DDIM (eta = 0) reaches from x_T told the codes z, over `steps` levels of the model's Karras grid:
    with x_T = stochastic_code(D, x0, z, steps), a reconstruction of x0."""
    return samplers.sample_ddim(D, x_T, sampling.sigma_grid(D, _steps(steps)), cond=z)


def slerp(a: Tensor, b: Tensor, w) -> Tensor:
    """Spherical interpolation between a and b (one shape (N, ...)) at weights w in [0, 1] (a number or a 1-D
    sequence of K): (K, N, ...). Gaussian codes such as x_T keep their norm along the path, which a linear mix
    would shrink half-way; w = 0 and w = 1 return a and b exactly."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape or a.dim() < 2:
        raise bad(InputError, "b", b, "pass two tensors of one shape (N, ...), e.g. two batches of x_T")
    w = torch.as_tensor(w, dtype=a.dtype).reshape(-1)
    if not torch.isfinite(w).all() or (w < 0).any() or (w > 1).any():
        raise bad(InputError, "w", w.tolist(), "pass interpolation weights in [0, 1]")
    wk = w.reshape(-1, *([1] * a.dim()))                                      # (K, 1, ...)
    theta = F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).clamp(-1, 1).acos()
    theta = theta.reshape(1, -1, *([1] * (a.dim() - 1)))                      # (1, N, 1, ...)
    sin = theta.sin()
    curved = sin > 1e-6                                   # (anti)parallel pairs: the linear mix is the limit
    sin = torch.where(curved, sin, torch.ones_like(sin))
    ca = torch.where(curved, ((1 - wk) * theta).sin() / sin, 1 - wk)
    cb = torch.where(curved, (wk * theta).sin() / sin, wk)
    out = ca * a + cb * b
    out[w == 0], out[w == 1] = a, b
    return out


@torch.no_grad()
def held_out(model, r) -> dict:
    """The fixed-noise denoising loss on 2,000 test images told their own code and told the null vector, and
    linear and k-NN probes of z_sem (5,000 labelled training images, scored on those test images). With
    p_uncond = 0 the null's learned stand-in is never trained, so the second loss is a sanity check that the code
    is used, not a measure of how much it carries (telling each image another image's code would be that)."""
    x, y = data.held_out(r.data)
    model.eval()
    z = semantic_codes(model, x)
    out = {}
    for key, c in (("test_denoise_loss", z), ("test_denoise_loss_null", torch.zeros_like(z))):
        terms = losses.denoising_terms(model, x, c, abar=recipes.abar(r), prediction=r.prediction,
                                       generator=torch.Generator().manual_seed(99))
        out[key] = round(terms["denoise"].mean().item(), 5)
    xt, yt = data.fashion_mnist.tensors("train")
    zt = semantic_codes(model, xt[:5000])
    out["linear_probe"] = round(probes.linear_probe(zt, yt[:5000], z, y), 4)
    out["knn"] = round(probes.knn_accuracy(zt, yt[:5000], z, y), 4)
    return out


def golden_call(model, x, t, y):
    """The golden fingerprint: the decoder told the codes of fixed images (the encoder in inference mode)."""
    g = torch.Generator().manual_seed(5)
    return model(x, t, semantic_codes(model, torch.rand(len(x), *x.shape[1:], generator=g) * 2 - 1))


registry.register(registry.METHODS, "diffae", registry.Method(terms=diffae_terms, evaluate=held_out, call=golden_call))
