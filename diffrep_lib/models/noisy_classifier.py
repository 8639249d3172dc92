"""A noise-aware classifier p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021; survey
Eq. 11; ch. 3): the evaluation CNN's shape, with every conv block scaled and shifted by a timestep
embedding, trained on images noised at all levels. Input x_t in the VP scaling, t a (fractional) timestep.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .embeddings import TimestepEmbedder


@dataclass(frozen=True)
class NoisyClassifierConfig:
    in_channels: int = 1
    width: int = 32
    feat_dim: int = 128
    num_classes: int = 10
    emb_dim: int = 64


class Block(nn.Module):
    """conv 3x3 -> GroupNorm scaled and shifted by the time embedding -> SiLU."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out)
        self.emb = nn.Linear(emb_dim, 2 * c_out)

    def forward(self, x, emb):
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        return F.silu(self.norm(self.conv(x)) * (1 + scale) + shift)


class NoisyClassifier(nn.Module):
    output_kind = "logits"      # not an image: the denoiser adapters refuse it

    def __init__(self, cfg: NoisyClassifierConfig = NoisyClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        w, e = cfg.width, cfg.emb_dim
        self.time_embed = TimestepEmbedder(e)
        self.blocks = nn.ModuleList([Block(cfg.in_channels, w, e), Block(w, w, e),
                                     Block(w, 2 * w, e), Block(2 * w, 2 * w, e)])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 7 * 7, cfg.feat_dim), nn.SiLU(),
                                  nn.Linear(cfg.feat_dim, cfg.num_classes))

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        emb = F.silu(self.time_embed(t))
        for i, block in enumerate(self.blocks):
            x = block(x, emb)
            if i in (1, 3):
                x = F.max_pool2d(x, 2)                 # 28 -> 14 -> 7
        return self.head(x)
