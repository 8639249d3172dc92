"""A residual MLP denoiser for vectors: RCG's representation diffusion model (Li et al. 2024; survey §3.2.3; ch. 10).

RCG models the distribution of an encoder's image embeddings with a diffusion model of its own. Its network
(`SimpleMLP` in the official code) is a stack of residual blocks, each normalising its input, adding a projection
of the timestep embedding, and ending in a zero-initialised linear layer, so that every block starts as the
identity. Shapes: x (N, dim) -> prediction (N, dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .embeddings import TimestepEmbedder


@dataclass(frozen=True)
class ResMLPConfig:
    dim: int = 128          # the vectors modelled (the encoder's embedding size)
    width: int = 512        # RCG: 1536 for 256-d MoCo v3 embeddings (the book's quick RDM: 192)
    blocks: int = 4         # RCG: 12
    dropout: float = 0.0


def _zero(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ResMLPBlock(nn.Module):
    """LayerNorm-SiLU-Linear plus the timestep embedding, then LayerNorm-SiLU-dropout-Linear (zero-initialised),
    residual."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm1, self.lin1 = nn.LayerNorm(width), nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.norm2, self.drop, self.lin2 = nn.LayerNorm(width), nn.Dropout(dropout), _zero(nn.Linear(width, width))

    def forward(self, h, emb):
        a = self.lin1(F.silu(self.norm1(h))) + self.emb(F.silu(emb))
        return h + self.lin2(self.drop(F.silu(self.norm2(a))))


class ResMLP(nn.Module):
    output_kind = "image"       # predicts eps, x0 or v of its input: what a denoiser adapter wraps

    def __init__(self, cfg: ResMLPConfig = ResMLPConfig()):
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimestepEmbedder(cfg.width)
        self.inp = nn.Linear(cfg.dim, cfg.width)
        self.blocks = nn.ModuleList(ResMLPBlock(cfg.width, cfg.dropout) for _ in range(cfg.blocks))
        self.out = nn.Sequential(nn.LayerNorm(cfg.width), nn.SiLU(), _zero(nn.Linear(cfg.width, cfg.dim)))

    @property
    def input_shape(self) -> tuple:
        """(dim,): the vectors this network denoises."""
        return (self.cfg.dim,)

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        emb, h = self.time_embed(t), self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)
