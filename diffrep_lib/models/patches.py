"""Images <-> patch tokens for the token backbones (DiT, U-ViT; ch. 2) and the patch-wise PCA tokenizer."""
from __future__ import annotations

from torch import Tensor


def unpatchify(tokens: Tensor, patch: int, channels: int) -> Tensor:
    """(N, g*g, p*p*C) tokens in row-major patch order -> (N, C, g*p, g*p) images."""
    n, g = tokens.shape[0], round(tokens.shape[1] ** 0.5)
    x = tokens.reshape(n, g, g, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)   # (N, C, g, p, g, p)
    return x.reshape(n, channels, g * patch, g * patch)


def patchify(x: Tensor, patch: int) -> Tensor:
    """(N, C, H, W) images -> (N, (H/p)*(W/p), p*p*C) tokens in row-major patch order, each token (p, p, C)
    flattened as `unpatchify` reads it (its exact inverse on square images)."""
    n, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    t = x.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)    # (N, gh, gw, p, p, C)
    return t.reshape(n, (h // patch) * (w // patch), patch * patch * c)
