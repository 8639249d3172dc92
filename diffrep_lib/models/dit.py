"""Diffusion Transformer with adaLN-Zero (Peebles & Xie 2023; survey §2.2, Fig. 3 right; ch. 2).

Follows the paper's structure: patchify (a conv with kernel = stride = p) plus fixed 2-D sin-cos
positions; the condition c = timestep embedding + label embedding (a table with a null row for label
dropout); blocks whose LayerNorms are modulated by (shift, scale, gate) regressed from c, with the
regression layers zero-initialised so that every block starts as the identity and the network outputs 0;
a modulated final layer and unpatchify.
Module names: `patch`, `blocks.{i}` (tokens (N, T, D) out), `final`.
Shapes: x (N, C, H, W) -> tokens (N, T = (H/p)(W/p), D) -> (N, C, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import SelfAttention, mlp
from .embeddings import LabelEmbedder, TimestepEmbedder, with_null
from .patches import unpatchify


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 1
    image_size: int = 28
    patch: int = 4
    dim: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int | None = 10
    zero_init: bool = True      # adaLN-Zero; False gives the ablation with ordinary initialisation


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions (MAE/DiT): half the channels encode rows, half columns. (grid^2, dim)."""
    def one_d(d, pos):
        omega = 1.0 / 10_000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([one_d(dim // 2, ys), one_d(dim // 2, xs)], dim=1).float()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """x + g1 * Attn(LN(x)(1 + s1) + b1); x + g2 * MLP(LN(x)(1 + s2) + b2), with (b, s, g) from c."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(dim, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        b1, s1, g1, b2, s2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), b1, s1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), b2, s2))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """net(x_t, t, y=None) -> prediction with the shape of x_t."""

    output_kind = "image"       # predicts eps, x0 or v: what a denoiser adapter wraps

    def __init__(self, cfg: DiTConfig = DiTConfig()):
        super().__init__()
        self.cfg = cfg
        p, d = cfg.patch, cfg.dim
        self.grid = cfg.image_size // p
        self.patch = nn.Conv2d(cfg.in_channels, d, p, stride=p)
        self.register_buffer("pos", sincos_2d(d, self.grid)[None], persistent=False)
        self.time_embed = TimestepEmbedder(d, freq_dim=256)
        self.label_embed = LabelEmbedder(cfg.num_classes, d) if cfg.num_classes else None
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final = FinalLayer(d, p * p * cfg.in_channels)
        self.initialize()

    @property
    def null_label(self):
        return self.label_embed.null if self.label_embed is not None else None

    def initialize(self):
        """DiT's initialisation: xavier linears, the patch conv like a linear, N(0, 0.02) embeddings and, for
        adaLN-Zero, zeros in every modulation regressor and in the output layer."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch.bias)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.table.weight, std=0.02)
        if self.cfg.zero_init:
            for block in self.blocks:
                nn.init.zeros_(block.ada[-1].weight)
                nn.init.zeros_(block.ada[-1].bias)
            for layer in (self.final.ada[-1], self.final.linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) this network takes: its positional embedding fixes the image size."""
        return (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size)

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        c = self.time_embed(t)
        if self.label_embed is not None:
            y = with_null(y, t, self.label_embed.null)
            c = c + self.label_embed(y)
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos        # (N, T, D)
        for block in self.blocks:
            h = block(h, c)
        return unpatchify(self.final(h, c), self.cfg.patch, self.cfg.in_channels)
