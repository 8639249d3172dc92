"""A U-Net told a scene by tokens, one per object, read through cross-attention (as a text-to-image model reads its
prompt; Rombach et al. 2022): the test bed of diffusion self-guidance (Epstein et al. 2023; survey §3.2.4; ch. 11).

Each token describes one thing in the scene by `token_dim` numbers (for the toy scenes: a one-hot shape class and
an RGB colour for the object, the colour alone for the background); a linear map and a learned per-slot embedding
turn them into `context_dim`-wide keys and values. Nothing tells the network *where* an object is: it must place it,
and the attention of its pixels to the object's token is where it put it. That map is what self-guidance reads.

The condition is the tokens flattened into one vector (N, tokens * token_dim), so that the book's denoisers and
classifier-free guidance take it as they take RCG's representations: a zero row means "no condition" and is
replaced by learned null tokens (a real token always holds a colour, so it is never all zero).

    net = TokenUNet(TokenUNetConfig(in_channels=3))
    eps_hat = net(x_t, t, tokens.flatten(1))          # tokens (N, 2, 7)
    net.cross_layers()                                # the cross-attention layers, by module path
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .unet import UNet, UNetConfig, _zero


@dataclass(frozen=True)
class TokenUNetConfig(UNetConfig):
    num_classes: int | None = None     # no label table: the condition is the scene's tokens
    tokens: int = 2                    # K: slots in the context (the toy scenes: object, background)
    token_dim: int = 7                 # numbers describing one token
    context_dim: int = 64              # width of the keys and values
    cross_levels: tuple = (1, 2)       # resolution levels with cross-attention (0 = highest), down and up


class CrossAttention(nn.Module):
    """Multi-head attention of every pixel (query) to the K context tokens (keys, values), residual."""

    attends_to_context = True       # what self-guidance checks: a layer whose probs(x, context) are token maps

    def __init__(self, channels: int, context_dim: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def _qkv(self, x, context):
        n, c, h, w = x.shape
        context = context.expand(n, -1, -1)
        q = self.q(self.norm(x)).reshape(n, self.heads, c // self.heads, h * w).transpose(-1, -2)
        k, v = self.kv(context).reshape(n, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v                                   # (N, heads, HW, d), (N, heads, K, d) twice

    def probs(self, x, context):
        """The attention probabilities (N, heads, H*W, K): for each pixel, a distribution over the tokens."""
        q, k, _ = self._qkv(x, context)
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)

    def forward(self, x, context):
        n, c, h, w = x.shape
        q, k, v = self._qkv(x, context)
        out = F.scaled_dot_product_attention(q, k, v)   # (N, heads, HW, d)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class TokenUNet(UNet):
    """UNet (module paths unchanged) with cross-attention to the scene's tokens at `cross_levels`."""

    def __init__(self, cfg: TokenUNetConfig = TokenUNetConfig()):
        super().__init__(cfg)
        d, last = cfg.context_dim, len(cfg.channels) - 1
        self.token_proj = nn.Linear(cfg.token_dim, d)
        self.slot = nn.Parameter(0.02 * torch.randn(cfg.tokens, d))        # which slot a token fills
        self.null_tokens = nn.Parameter(0.02 * torch.randn(cfg.tokens, d))  # the learned "no condition"
        for i in cfg.cross_levels:
            c = cfg.channels[i]
            self.down[i].cross = CrossAttention(c, d, cfg.heads, cfg.groups)
            self.up[last - i].cross = CrossAttention(c, d, cfg.heads, cfg.groups)

    @property
    def null_label(self) -> int:
        """The null condition: the zero vector (guidance.cfg fills the unconditional half of its batch with it)."""
        return 0

    @property
    def condition_dim(self) -> int:
        """The length of the flattened condition this network takes (denoisers check it)."""
        return self.cfg.tokens * self.cfg.token_dim

    def context(self, y):
        cfg = self.cfg
        n = len(y) if y is not None else 1
        null = self.null_tokens.expand(n, -1, -1)
        if y is None:
            return null
        ctx = self.token_proj(y.reshape(n, cfg.tokens, cfg.token_dim)) + self.slot
        return torch.where((y == 0).all(dim=1)[:, None, None], null.to(ctx.dtype), ctx)

    def cross_layers(self) -> dict[str, CrossAttention]:
        """{module path: layer} of every cross-attention layer, highest resolution first on the way down."""
        return {name: m for name, m in self.named_modules() if isinstance(m, CrossAttention)}
