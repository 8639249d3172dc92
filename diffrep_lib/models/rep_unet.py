"""A U-Net told a representation instead of a label: RCG's pixel generator (Li et al. 2024; survey §3.2.3; ch. 10).

The representation r (a vector of `rep_dim` numbers, an image encoder's embedding) enters where the label did:
a linear map of r is added to the timestep embedding, which scales and shifts every residual block. For condition
dropout RCG replaces r by a learned "fake latent"; here the zero vector stands for "no representation" and is
replaced by that learned vector inside the network. A standardised representation (zero mean and unit standard
deviation over its entries, RCG's normalisation) is never the zero vector, so the two cannot be confused, and
classifier-free guidance (`guidance.cfg` with null 0) works on this network as on a labelled one.

    net = RepUNet(RepUNetConfig(rep_dim=128))
    eps_hat = net(x_t, t, r)          # r (N, 128): conditioned; zero rows or r=None: unconditioned
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class RepUNetConfig(UNetConfig):
    num_classes: int | None = None     # no label table: the condition is a vector
    rep_dim: int = 128


class RepUNet(UNet):
    """UNet (module paths unchanged) whose condition is a representation vector (N, rep_dim) rather than an id."""

    def __init__(self, cfg: RepUNetConfig = RepUNetConfig()):
        super().__init__(cfg)
        self.rep_embed = nn.Linear(cfg.rep_dim, cfg.emb_dim)
        self.fake = nn.Parameter(0.02 * torch.randn(cfg.rep_dim))     # RCG's learned stand-in for "no condition"

    @property
    def null_label(self) -> int:
        """The null condition: the zero vector (guidance.cfg fills the unconditional half of its batch with it)."""
        return 0

    @property
    def condition_dim(self) -> int:
        """The length of the condition vector this network takes (denoisers check it)."""
        return self.cfg.rep_dim

    def embed(self, t, y=None):
        if y is None:
            y = torch.zeros(len(t), self.cfg.rep_dim, device=t.device)
        null = (y == 0).all(dim=1, keepdim=True)
        rep = torch.where(null, self.fake.to(y.dtype), y)
        return self.time_embed(t) + self.rep_embed(rep)
