"""A time-conditioned MLP denoiser for 2-D toy data (ch. 1): net(x_t, t) -> prediction, (N, 2) -> (N, 2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .embeddings import timestep_embedding


@dataclass(frozen=True)
class MLPConfig:
    dim: int = 2
    hidden: int = 128
    depth: int = 3
    freq_dim: int = 32


class MLP(nn.Module):
    output_kind = "image"       # predicts eps, x0 or v: what a denoiser adapter wraps

    def __init__(self, cfg: MLPConfig = MLPConfig()):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.dim + cfg.freq_dim, cfg.hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
                                    for _ in range(cfg.depth - 1))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, cfg.dim))

    @property
    def input_shape(self) -> tuple:
        """(dim,): the points this network denoises."""
        return (self.cfg.dim,)

    def forward(self, x, t, y=None):
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        h = self.inp(torch.cat([x, timestep_embedding(t, self.cfg.freq_dim)], dim=-1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)
