"""U-ViT: a ViT denoiser that treats everything as tokens and adds U-Net-style long skips
(Bao et al. 2023, "All are worth words"; survey §2.2; ch. 2).

The timestep and the label each become one token in front of the patch tokens; learned positions; a stack
of pre-LayerNorm transformer blocks split into `in_blocks`, a `mid` block and `out_blocks`, where out-block
i first fuses its input with the output of in-block (depth - 1 - i) by Linear(concat) -- the long skip
from shallow to deep; a final LayerNorm, a linear map to pixels per patch, unpatchify and a 3x3 conv.
`long_skips=False` gives the ablation: the same stack without the skips (and without their linears).
Module names: `patch`, `in_blocks.{i}`, `mid`, `out_blocks.{i}` (tokens (N, 2 + T, D) out: time, label,
patches), `final`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import SelfAttention, mlp
from .embeddings import LabelEmbedder, timestep_embedding, with_null
from .patches import unpatchify


@dataclass(frozen=True)
class UViTConfig:
    in_channels: int = 1
    image_size: int = 28
    patch: int = 4
    dim: int = 128
    depth: int = 7                 # in-blocks = out-blocks = depth // 2, plus one mid block
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int | None = 10
    long_skips: bool = True


class Block(nn.Module):
    """[skip fusion] then x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, skip: bool = False):
        super().__init__()
        self.skip = nn.Linear(2 * dim, dim) if skip else None
        self.norm1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), mlp(dim, mlp_ratio)

    def forward(self, x, skip=None):
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class UViT(nn.Module):
    """net(x_t, t, y=None) -> prediction with the shape of x_t."""

    output_kind = "image"       # predicts eps, x0 or v: what a denoiser adapter wraps

    def __init__(self, cfg: UViTConfig = UViTConfig()):
        super().__init__()
        if cfg.depth % 2 == 0:
            raise ValueError(f"U-ViT depth must be odd (in-blocks, a mid block, out-blocks); got {cfg.depth}")
        self.cfg = cfg
        p, d, half = cfg.patch, cfg.dim, cfg.depth // 2
        self.grid = cfg.image_size // p
        self.extras = 1 + (cfg.num_classes is not None)            # time token (+ label token)
        self.patch = nn.Conv2d(cfg.in_channels, d, p, stride=p)
        self.time_embed = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.label_embed = LabelEmbedder(cfg.num_classes, d) if cfg.num_classes else None
        self.pos = nn.Parameter(torch.zeros(1, self.extras + self.grid ** 2, d))
        self.in_blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(half))
        self.mid = Block(d, cfg.heads, cfg.mlp_ratio)
        self.out_blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, skip=cfg.long_skips) for _ in range(half))
        self.norm = nn.LayerNorm(d)
        self.final = nn.Linear(d, p * p * cfg.in_channels)
        self.conv = nn.Conv2d(cfg.in_channels, cfg.in_channels, 3, padding=1)
        self.initialize()

    @property
    def null_label(self):
        return self.label_embed.null if self.label_embed is not None else None

    def initialize(self):
        """U-ViT's initialisation: truncated-normal(0.02) linears, positions and label table, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos, std=0.02)
        if self.label_embed is not None:
            nn.init.trunc_normal_(self.label_embed.table.weight, std=0.02)

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) this network takes: its positional embedding fixes the image size."""
        return (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size)

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        extra = [self.time_embed(timestep_embedding(t, self.cfg.dim))[:, None]]
        if self.label_embed is not None:
            y = with_null(y, t, self.label_embed.null)
            extra.append(self.label_embed(y)[:, None])
        h = torch.cat([*extra, self.patch(x).flatten(2).transpose(1, 2)], dim=1) + self.pos
        skips = []
        for block in self.in_blocks:
            h = block(h)
            skips.append(h)
        h = self.mid(h)
        for block in self.out_blocks:
            h = block(h, skips.pop())
        out = self.final(self.norm(h))[:, self.extras:]
        return self.conv(unpatchify(out, self.cfg.patch, self.cfg.in_channels))
