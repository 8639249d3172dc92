"""A diffusion autoencoder: a semantic encoder and a U-Net decoder told its code (DiffAE, Preechakul et al. 2022;
survey §3.1.4; ch. 6).

The encoder maps the clean image x0 to a vector z_sem; the decoder is a conditional denoiser eps(x_t, t, z_sem);
both are trained together by the denoising loss alone, so z_sem holds whatever helps to denoise x0 at every noise
level. The rest of the image (the details the decoder cannot infer from z_sem) is recovered as a second,
stochastic code x_T by running the deterministic sampler backwards from x0 (DDIM inversion, `methods.diffae`).

    net = DiffAE(DiffAEConfig())
    z = net.semantic_code(x0)           # (N, 128): the semantic code
    eps_hat = net(x_t, t, z)            # the decoder, the RepUNet contract (zero rows: no code)

Departures from the paper, stated once: the encoder is the book's SimCLR encoder architecture (a 3-level CNN with
BatchNorm, so a probe on z_sem compares with SimCLR's embedding on the same network) rather than the first half of
a U-Net, and z_sem enters through the timestep embedding (which scales and shifts every residual block, as
`RepUNet` does) rather than as a separate multiplicative AdaGN factor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from .encoder import Encoder, EncoderConfig
from .rep_unet import RepUNet, RepUNetConfig


@dataclass(frozen=True)
class DiffAEConfig(RepUNetConfig):
    encoder: EncoderConfig = field(default_factory=EncoderConfig)     # its last width is the code's length

    def __post_init__(self):
        if self.encoder.widths[-1] != self.rep_dim:
            raise ValueError(f"the code's length rep_dim={self.rep_dim} must equal the encoder's last width "
                             f"{self.encoder.widths[-1]}")


class DiffAE(RepUNet):
    """RepUNet (module paths unchanged, so every readout and guidance of the book reads the decoder) with a
    semantic encoder at `encoder`, trained with it."""

    def __init__(self, cfg: DiffAEConfig = DiffAEConfig()):
        super().__init__(cfg)
        self.encoder = Encoder(cfg.encoder)
        self.encoder.head = nn.Identity()            # SimCLR's projection head: no use without its loss

    def semantic_code(self, x0: Tensor) -> Tensor:
        """The semantic code z_sem (N, rep_dim) of clean images x0 (N, C, H, W) in [-1, 1]."""
        return self.encoder.pooled(x0)
