"""The latent denoising autoencoder of l-DAE (Chen, Liu, Xie and He 2024; survey §3.1.4), the objective only: noise
added in a patch-wise PCA latent of dimension d (`models.pca_tokenizer`), the network reading and writing images.

    z_0 = V_d x_0 (per patch),  z_t = z_0 + sigma_t eps,  x_t = V_d^T z_t          (noise only in the latent)
    r = V (x_0 - net(x_t, t))                                                     (the residual, full PCA basis)
    L = lambda_t * sum_i w_i r_i^2,   w_i = 1 (i <= d), 0.1 (i > d),   lambda_t = 1 / (1 + sigma_t^2)

with sigma_t linear in t from 0 to sqrt(2) and no input scaling. The small weight outside the latent keeps the
network from spending its capacity on what the tokenizer discards; d = D is the classical pixel-space denoising
autoencoder. The representation is the network's first half read at a small fixed t (10) on the clean image
through the latent (V_d^T V_d x_0, the input at sigma = 0), its tokens average-pooled (`representation`).

The zoo task "ldae" trains `models.latent_dae.LatentDAE` (its tokenizer fitted on the training images before the
first step); recipe options: 'sigma' (one fixed noise level instead of the schedule: the single-level ablation).
A network with a label embedding is told the labels, dropped with probability p_uncond (the conditioning
ablation); it is read with the null label.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import data
from ..core.losses import drop_labels
from ..models.pca_tokenizer import PatchPCA
from ..readout import probes
from ..support.hooks import forward_until, recording
from ..zoo import registry
from ..zoo.recipes import option

SIGMA_MAX = 2 ** 0.5          # sigma_t runs linearly from 0 to sqrt(2) over the T steps
OUTSIDE_WEIGHT = 0.1          # the residual's weight on the coordinates the latent discards
READ_T = 10                   # the representation's timestep (clean input; l-DAE's choice)
FIT_IMAGES = 20_000           # training images whose patches fit the PCA (all of them: more than enough)


def sigmas(T: int = 1000) -> Tensor:
    """sigma_t for t = 0 .. T-1, linear from 0 to sqrt(2)."""
    return torch.linspace(0.0, SIGMA_MAX, T)


def noised_input(tok: PatchPCA, x0: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
    """x_t = V_d^T (V_d x_0 + sigma eps), per image sigma (N,) and latent noise eps (N, tokens, d): the image the
    network reads, whose every patch lies in the latent's span around the patches' mean."""
    z = tok.encode(x0) + sigma.view(-1, 1, 1) * eps
    return tok.decode(z)


def residual_loss(tok: PatchPCA, pred: Tensor, x0: Tensor, sigma: Tensor,
                  outside: float = OUTSIDE_WEIGHT) -> Tensor:
    """Per-image l-DAE loss (N,): lambda_t times the weighted squared residual in the full PCA basis, summed over
    coordinates and averaged over patches. (The mean of the patches cancels in the residual.)"""
    r = tok.coordinates(x0) - tok.coordinates(pred)                  # (N, tokens, D)
    w = torch.full((tok.dim,), outside, device=r.device, dtype=r.dtype)
    w[:tok.d] = 1.0
    per_image = (w * r.square()).sum(-1).mean(-1)
    return per_image / (1 + sigma.to(per_image.dtype) ** 2)


def timestep_of(sigma: float, T: int = 1000) -> int:
    """The step t whose sigma_t is nearest to sigma (what a single-level network is told)."""
    return int((sigmas(T) - sigma).abs().argmin())


def ldae_terms(net, x: Tensor, y: Tensor | None = None, *, recipe, null=None, generator=None, **_) -> dict:
    """The l-DAE loss on a batch: t ~ U{0..T-1} (or the recipe's one 'sigma'), noise in the d-dim latent, the
    network's clean image scored by `residual_loss`."""
    n, tok = x.shape[0], net.tokenizer
    table = sigmas(recipe.T).to(x.device)
    fixed = option(recipe, "sigma")
    if fixed is None:
        t = torch.randint(0, recipe.T, (n,), generator=generator, device=x.device)
    else:
        t = torch.full((n,), timestep_of(fixed, recipe.T), device=x.device)
    sigma = table[t]
    tokens = x.shape[-1] // tok.patch * x.shape[-2] // tok.patch
    eps = torch.randn((n, tokens, tok.d), generator=generator, device=x.device)
    x_t = noised_input(tok, x, sigma, eps)
    if net.null_label is not None and y is not None:
        pred = net(x_t, t, drop_labels(y, recipe.p_uncond, null, generator) if recipe.p_uncond > 0 else y)
    else:
        pred = net(x_t, t)
    return {"ldae": residual_loss(tok, pred.float(), x, sigma)}


INPUTS = ("latent", "image")   # what the encoder reads: the clean image through the latent, or the raw image


def clean_input(net, x: Tensor, kind: str = "latent") -> Tensor:
    """The noise-free input of the network: 'latent', the image through the tokenizer, V_d^T V_d x (every image
    the network saw in training lay in this span; sigma = 0 of `noised_input`), or 'image', x itself (for d < D
    an input unlike any seen in training)."""
    if kind not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {kind!r}")
    if kind == "image":
        return x
    if not net.fitted:
        raise ValueError("the network's tokenizer is not fitted (a bare LatentDAE): fit it with "
                         "net.fit_tokenizer(x_train), or copy a trained model's tokenizer state")
    tok = net.tokenizer
    return tok.decode(tok.encode(x.to(tok.basis.device)))


@torch.no_grad()
def block_features(net, x: Tensor, blocks, *, t: int = READ_T, input: str = "latent",
                   batch: int = 500) -> dict[int, Tensor]:
    """The average-pooled tokens after each of the first k DiT blocks, k in `blocks`, of clean images x at
    timestep t (read through `clean_input`), in one forward pass per batch: {k: (N, dim)}. A label-conditioned
    network is read with the null label."""
    blocks = sorted({int(k) for k in blocks})
    depth = len(net.dit.blocks)
    if not blocks or blocks[0] < 1 or blocks[-1] > depth:
        raise ValueError(f"blocks={blocks}: the DiT has {depth}; pass block counts from 1 to {depth}")
    device = next(net.parameters()).device
    out = {k: [] for k in blocks}
    with recording({k: net.dit.blocks[k - 1] for k in blocks}) as rec, \
            forward_until(net.dit.blocks[k - 1] for k in blocks) as run:     # the blocks after the last never run
        for i in range(0, len(x), batch):
            xb = clean_input(net, x[i:i + batch].to(device), input)
            run(net, xb, torch.full((len(xb),), t, device=device))
            for k in blocks:
                out[k].append(rec[k].float().mean(1).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def representation(net, x: Tensor, *, t: int = READ_T, blocks: int | None = None, input: str = "latent",
                   batch: int = 500) -> Tensor:
    """l-DAE's representation of clean images x: the tokens after the encoder's blocks (default: the first half
    of the DiT, `LatentDAE.encoder_blocks`) at timestep t, average-pooled, (N, dim); the image is read through
    the latent, as in training (`clean_input`)."""
    k = net.encoder_blocks if blocks is None else blocks
    return block_features(net, x, [k], t=t, input=input, batch=batch)[k]


def with_fitted_tokenizer(r, net, *, for_training: bool):
    """For training, the tokenizer is fitted on the recipe's training images (a stored model brings its own)."""
    if for_training:
        x, _, _ = data.training_set(r.data)
        net.fit_tokenizer(x[:FIT_IMAGES], generator=torch.Generator().manual_seed(r.seed))
    return net


@torch.no_grad()
def probe_encoder(model, r) -> dict:
    """The encoder's pooled tokens probed with 5,000 labelled training images, scored on the held-out set."""
    x, y = data.held_out(r.data)
    xt, yt = data.fashion_mnist.tensors("train")
    ft, fe = representation(model, xt[:5000]), representation(model, x)
    return {"linear_probe": round(probes.linear_probe(ft, yt[:5000], fe, y), 4),
            "knn": round(probes.knn_accuracy(ft, yt[:5000], fe, y), 4)}


registry.register(registry.METHODS, "ldae", registry.Method(terms=ldae_terms, wrap=with_fitted_tokenizer,
                                                            evaluate=probe_encoder))
