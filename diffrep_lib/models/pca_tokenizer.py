"""The patch-wise PCA tokenizer of l-DAE (Chen, Liu, Xie and He 2024, "Deconstructing denoising diffusion models for
self-supervised learning"; survey §3.1.4): a fixed linear map, fitted once on image patches, that takes each p x p
patch to its coordinates in the patches' principal basis. Its first d coordinates are the latent in which the
latent denoising autoencoder adds its noise; d = D (every coordinate) is the pixel space itself, rotated.

    tok = fit(x_train, patch=7, d=8)          # x: (N, C, H, W) in the training scaling
    z = tok.encode(x)                         # (N, tokens, d)
    x_hat = tok.decode(z)                     # (N, C, H, W): the projection of x on the top-d components

The basis rows are sorted by decreasing variance and orthonormal, so `decode(encode(x))` is x exactly when d = D,
and otherwise the best rank-d reconstruction of each patch around the patches' mean. No gradient flows into the
tokenizer: it is fitted, not trained.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .patches import patchify, unpatchify


class PatchPCA(nn.Module):
    """Patch-wise PCA with a full basis (D x D, rows by decreasing variance) and the first d rows as the encoder."""

    def __init__(self, basis: Tensor, mean: Tensor, variance: Tensor, patch: int, channels: int, d: int):
        super().__init__()
        D = basis.shape[0]
        if basis.shape != (D, D) or mean.shape != (D,) or not 1 <= d <= D or patch * patch * channels != D:
            raise ValueError(f"inconsistent tokenizer: basis {tuple(basis.shape)}, mean {tuple(mean.shape)}, "
                             f"d={d}, patch={patch}, channels={channels}")
        self.patch, self.channels, self.d = patch, channels, d
        self.register_buffer("basis", basis)           # (D, D), rows orthonormal, by decreasing variance
        self.register_buffer("mean", mean)             # (D,)
        self.register_buffer("variance", variance)     # (D,) the patches' variance along each row

    @property
    def dim(self) -> int:
        """D = p * p * C: a patch's number of pixels, and the size of the full basis."""
        return self.basis.shape[0]

    def coordinates(self, x: Tensor) -> Tensor:
        """Every patch's coordinates in the full basis: (N, tokens, D)."""
        return (patchify(x, self.patch) - self.mean) @ self.basis.T

    def encode(self, x: Tensor) -> Tensor:
        """The latent: the first d coordinates of every patch, (N, tokens, d)."""
        return self.coordinates(x)[..., :self.d]

    def decode(self, z: Tensor) -> Tensor:
        """Images from latents (N, tokens, k) with k <= D coordinates (usually d): the inverse PCA, (N, C, H, W)."""
        k = z.shape[-1]
        return unpatchify(z @ self.basis[:k] + self.mean, self.patch, self.channels)


@torch.no_grad()
def fit(x: Tensor, patch: int, d: int, max_patches: int = 200_000,
        generator: torch.Generator | None = None) -> PatchPCA:
    """The PCA of the p x p patches of images x (N, C, H, W), on at most `max_patches` of them drawn at random, in
    float64: the tokenizer keeping d of the D = p * p * C components."""
    tokens = patchify(x.double(), patch).reshape(-1, patch * patch * x.shape[1])
    if len(tokens) > max_patches:
        tokens = tokens[torch.randperm(len(tokens), generator=generator)[:max_patches]]
    mean = tokens.mean(0)
    cov = (tokens - mean).T @ (tokens - mean) / (len(tokens) - 1)
    variance, vectors = torch.linalg.eigh(cov)                       # ascending
    order = variance.argsort(descending=True)
    return PatchPCA(vectors[:, order].T.float().contiguous(), mean.float(), variance[order].clamp(min=0).float(),
                    patch, x.shape[1], d)
