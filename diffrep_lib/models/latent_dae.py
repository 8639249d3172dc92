"""The latent denoising autoencoder of l-DAE (Chen, Liu, Xie and He 2024; survey §3.1.4): a DiT that reads an
image and writes an image, with the patch-wise PCA tokenizer that defines its latent carried along as buffers.

    net = LatentDAE(LatentDAEConfig(d=8))        # tokenizer unfitted (identity basis) until `fit_tokenizer`
    net.fit_tokenizer(x_train)                   # the PCA of the training patches, stored in the state dict
    x0_hat = net(x_t, t)                         # image in, clean image out (the objective: methods/ldae.py)

The DiT's first half is the encoder whose pooled tokens are the representation (`encoder_blocks`); the second half
only serves the reconstruction. d = D (every PCA coordinate) is the classical pixel-space denoising autoencoder.
Module names: `tokenizer`, `dit` (and so `dit.blocks.{i}`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .dit import DiT, DiTConfig
from .pca_tokenizer import PatchPCA, fit


@dataclass(frozen=True)
class LatentDAEConfig:
    d: int = 8                    # the latent's coordinates per patch (D = patch^2 * channels is pixel space)
    dit: DiTConfig = DiTConfig(patch=7, dim=128, depth=6, heads=4, num_classes=None)
    tokenizer_patch: int = 7      # the PCA's patch (the DiT's own patch need not match it; here it does)

    @property
    def in_channels(self) -> int:
        return self.dit.in_channels

    @property
    def num_classes(self) -> int | None:
        """The DiT's label classes (None: unconditional), as the zoo reads a config's conditioning."""
        return self.dit.num_classes

    def __post_init__(self):
        D = self.tokenizer_patch ** 2 * self.dit.in_channels
        if not 1 <= self.d <= D:
            raise ValueError(f"d={self.d} must lie in 1..{D} (patch {self.tokenizer_patch}, "
                             f"{self.dit.in_channels} channel(s))")
        if self.dit.image_size % self.tokenizer_patch:
            raise ValueError(f"the tokenizer's patch {self.tokenizer_patch} does not tile {self.dit.image_size} px")


class LatentDAE(nn.Module):
    """net(x_t, t, y=None) -> x0_hat, with `tokenizer` (PatchPCA buffers) and `dit`."""

    output_kind = "image"

    def __init__(self, cfg: LatentDAEConfig = LatentDAEConfig()):
        super().__init__()
        self.cfg = cfg
        p, c = cfg.tokenizer_patch, cfg.dit.in_channels
        D = p * p * c
        # placeholder until fitted (or until a state dict is loaded): the identity basis with zero variance
        self.tokenizer = PatchPCA(torch.eye(D), torch.zeros(D), torch.zeros(D), p, c, cfg.d)
        self.dit = DiT(cfg.dit)

    @property
    def fitted(self) -> bool:
        """Whether the tokenizer holds a fitted PCA (a placeholder has zero variance everywhere)."""
        return bool(self.tokenizer.variance.sum() > 0)

    @property
    def null_label(self):
        return self.dit.null_label

    @property
    def input_shape(self) -> tuple:
        return self.dit.input_shape

    @property
    def encoder_blocks(self) -> int:
        """How many DiT blocks form the encoder: the first half (l-DAE's choice; its depth sweep peaked there)."""
        return self.cfg.dit.depth // 2

    @torch.no_grad()
    def fit_tokenizer(self, x: Tensor, generator: torch.Generator | None = None) -> "LatentDAE":
        """Fit the PCA on the patches of training images x (N, C, H, W), in the training scaling; returns self."""
        tok = fit(x.cpu(), self.cfg.tokenizer_patch, self.cfg.d, generator=generator)
        for name in ("basis", "mean", "variance"):
            getattr(self.tokenizer, name).copy_(getattr(tok, name))
        return self

    def forward(self, x: Tensor, t, y: Tensor | None = None) -> Tensor:
        return self.dit(x, t, y)
