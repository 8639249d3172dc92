"""Images <-> patch tokens for the token backbones (DiT, U-ViT; ch. 2)."""
from __future__ import annotations

from torch import Tensor


def unpatchify(tokens: Tensor, patch: int, channels: int) -> Tensor:
    """(N, g*g, p*p*C) tokens in row-major patch order -> (N, C, g*p, g*p) images."""
    n, g = tokens.shape[0], round(tokens.shape[1] ** 0.5)
    x = tokens.reshape(n, g, g, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)   # (N, C, g, p, g, p)
    return x.reshape(n, channels, g * patch, g * patch)
