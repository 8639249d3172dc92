"""The book's self-supervised image encoder (chs. 9 and 12): a small CNN trained with SimCLR on Fashion-MNIST,
standing in for DINOv2 or MoCo, which cannot be downloaded here.

Why SimCLR and a CNN: contrastive learning needs no labels and no momentum teacher, trains in minutes on a CPU,
and its two-view objective is the one self-labelled guidance and REPA assume of their encoder (images of one
garment close, different garments apart). A CNN learns faster per CPU-second than a ViT at this size; its last
map is 7 x 7, the token grid of a patch-4 DiT, so REPA can align token to token.

Interface (shared with `encoders.HubEncoder`): forward(x) -> tokens (N, 49, D); `pooled(x)` -> (N, D);
`head` is SimCLR's projection MLP, used only by the training loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    in_channels: int = 1
    widths: tuple = (32, 64, 128)      # 28x28, 14x14, 7x7
    proj_dim: int = 64                 # SimCLR projection head output


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Encoder(nn.Module):
    output_kind = "embeddings"      # not an image: the denoiser adapters refuse it

    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        layers = [_block(cfg.in_channels, w[0])]
        for a, b in zip(w[:-1], w[1:]):
            layers += [_block(a, b, stride=2), _block(b, b)]
        self.body = nn.Sequential(*layers)
        self.dim = w[-1]
        self.head = nn.Sequential(nn.Linear(self.dim, self.dim), nn.ReLU(inplace=True), nn.Linear(self.dim, cfg.proj_dim))

    def forward(self, x: torch.Tensor, t=None, y=None) -> torch.Tensor:
        """Patch tokens (N, T, D): the last feature map, one token per position, row by row."""
        return self.body(x).flatten(2).transpose(1, 2)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """One embedding per image (N, D): the mean of the tokens."""
        return self(x).mean(1)
