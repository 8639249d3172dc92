"""The latent denoising autoencoder of l-DAE (Chen, Liu, Xie and He 2024; survey §3.1.4), the objective only: noise
added in a patch-wise PCA latent of dimension d (`models.pca_tokenizer`), the network reading and writing images.

    z_0 = V_d x_0 (per patch),  z_t = z_0 + sigma_t eps,  x_t = V_d^T z_t          (noise only in the latent)
    r = V (x_0 - net(x_t, t))                                                     (the residual, full PCA basis)
    L = lambda_t * sum_i w_i r_i^2,   w_i = 1 (i <= d), 0.1 (i > d),   lambda_t = 1 / (1 + sigma_t^2)

with sigma_t linear in t from 0 to sqrt(2) and no input scaling. The small weight outside the latent keeps the
network from spending its capacity on what the tokenizer discards; d = D is the classical pixel-space denoising
autoencoder. The representation is the network's first half read at a small fixed t on the clean image. (The
objective's pieces, tested; its training terms and zoo recipe come with the chapter that trains it.)
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.pca_tokenizer import PatchPCA

SIGMA_MAX = 2 ** 0.5          # sigma_t runs linearly from 0 to sqrt(2) over the T steps
OUTSIDE_WEIGHT = 0.1          # the residual's weight on the coordinates the latent discards


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
