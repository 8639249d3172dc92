"""Timestep and label embeddings shared by the backbones (survey §2.2; ch. 1-2)."""
from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (fractional) timesteps (Vaswani et al. 2017; DDPM): (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Sinusoid of t followed by a two-layer MLP, as in DDPM, ADM and DiT."""

    def __init__(self, dim: int, freq_dim: int = 64):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))


class LabelEmbedder(nn.Module):
    """A table of num_classes + 1 rows; row `num_classes` is the null label used for label dropout (CFG)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    @property
    def null(self) -> int:
        return self.num_classes

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.table(y)


def with_null(y: torch.Tensor | None, like: torch.Tensor, null: int) -> torch.Tensor:
    """The labels y, or the null label for every sample (shaped like `like`) when y is None."""
    return torch.full_like(like, null, dtype=torch.long) if y is None else y
