"""A U-Net whose encoder also feeds a classifier head: one network for p(x) and p(y | x) (JDM, Deja et al. 2023;
survey §3.1.5; ch. 7).

The head reads what the left side of the U computes anyway: the global average of every down level's output
and of the bottleneck, concatenated (JDM's input; 32 + 48 + 48 + 48 = 176 numbers for the book's U-Net), through
a two-layer MLP with dropout. The denoiser path is the plain U-Net's, so every sampler, guidance and readout of
the book takes this network as it is; `classify(x, t)` is the classifier, read on clean images at t = 0.

    net = JointUNet(JointUNetConfig())
    eps_hat = net(x_t, t)            # the denoiser's prediction
    logits = net.classify(x)         # p(y | x) from the same encoder, t = 0
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class JointUNetConfig(UNetConfig):
    num_classes: int | None = None     # the denoiser is unconditional: labels are the head's targets only
    head_classes: int = 10
    head_hidden: int = 128
    head_dropout: float = 0.3          # JDM uses 0.7 on a network ten times wider


class JointUNet(UNet):
    """UNet (module paths unchanged: `down.{i}`, `mid`, `up.{i}`, `out`) plus `head`, a classifier on its encoder."""

    def __init__(self, cfg: JointUNetConfig = JointUNetConfig()):
        super().__init__(cfg)
        width = sum(cfg.channels) + cfg.channels[-1]
        self.head = nn.Sequential(nn.Dropout(cfg.head_dropout), nn.Linear(width, cfg.head_hidden), nn.SiLU(),
                                  nn.Dropout(cfg.head_dropout), nn.Linear(cfg.head_hidden, cfg.head_classes))

    def pooled(self, x, t=0, y=None):
        """The head's input (N, 176): every down level's output and the bottleneck, each averaged over positions."""
        h, skips, _ = self.encode(x, t, y)
        return torch.cat([f.mean(dim=(2, 3)) for f in (*skips, h)], dim=1)

    def classify(self, x, t=0, y=None):
        """Logits of p(y | x_t) read from the encoder at timestep t (0: the clean image, as the head trains)."""
        return self.head(self.pooled(x, t, y))
