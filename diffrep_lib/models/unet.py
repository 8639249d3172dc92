"""A small ADM-style U-Net denoiser for 28x28 images (Ronneberger et al. 2015; Ho et al. 2020;
Dhariwal & Nichol 2021; survey §2.2 and Fig. 3; ch. 1-2).

Residual blocks with GroupNorm and a scale-shift of the (time + label) embedding, self-attention at the
lowest resolution, average-pool down and nearest up, one skip per level, zero-initialised output.
Module names are stable so features can be hooked by path: `down.{i}`, `mid`, `up.{i}` (i = 0 is the
lowest resolution on the way up), `out`.
Shapes: x (N, C, 28, 28) -> levels 28, 14, 7 (channels `channels[i]`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .embeddings import LabelEmbedder, TimestepEmbedder, with_null


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    channels: tuple = (32, 48, 48)     # per resolution level, highest first
    emb_dim: int = 128
    groups: int = 8
    heads: int = 4
    num_classes: int | None = 10       # None: unconditional; else a null label is added (index num_classes)
    out_channels: int | None = None    # defaults to in_channels


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, then GroupNorm scaled and shifted by the embedding (ADM's 'scale-shift norm')."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def probs(self, x):
        """The attention probabilities (N, heads, H*W queries, H*W keys) this layer computes on x, softmax(q k^T /
        sqrt(d_head)) with rows summing to 1 (forward computes them inside scaled_dot_product_attention)."""
        n, c, h, w = x.shape
        q, k, _ = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        return torch.softmax(q.transpose(-1, -2) @ k / (c // self.heads) ** 0.5, dim=-1)

    def identity(self, x):
        """This layer's output with its attention matrix replaced by the identity: every position attends only to
        itself, so the attention returns V (perturbed-attention guidance's perturbed path)."""
        n, c, h, w = x.shape
        v = self.qkv(self.norm(x)).reshape(n, 3, c, h, w)[:, 2]
        return x + self.proj(v)

    def forward(self, x, emb=None):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))   # (N, C, H, W)


class Level(nn.Module):
    """One resolution level: a residual block, optionally followed by self-attention and by cross-attention to a
    context of tokens (`cross`, None here; networks told tokens set it: models/token_unet.py)."""

    def __init__(self, c_in, c_out, emb_dim, groups, heads, attn: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, groups)
        self.attn = Attention(c_out, heads, groups) if attn else None
        self.cross = None

    def forward(self, x, emb, context=None):
        x = self.res(x, emb)
        x = self.attn(x) if self.attn is not None else x
        return self.cross(x, context) if self.cross is not None else x


class UNet(nn.Module):
    """net(x_t, t, y=None) -> prediction (eps, x0 or v: the zoo's recipe says which)."""

    output_kind = "image"       # predicts eps, x0 or v: what a denoiser adapter wraps

    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        ch, e, g = cfg.channels, cfg.emb_dim, cfg.groups
        last = len(ch) - 1
        self.time_embed = TimestepEmbedder(e)
        self.label_embed = LabelEmbedder(cfg.num_classes, e) if cfg.num_classes else None
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(
            Level(ch[max(i - 1, 0)], ch[i], e, g, cfg.heads, attn=(i == last)) for i in range(len(ch)))
        self.mid = nn.ModuleList([ResBlock(ch[-1], ch[-1], e, g), Attention(ch[-1], cfg.heads, g),
                                  ResBlock(ch[-1], ch[-1], e, g)])
        self.up = nn.ModuleList(
            Level(2 * ch[i], ch[i], e, g, cfg.heads, attn=(i == last)) for i in reversed(range(len(ch))))
        self.up_proj = nn.ModuleList(
            nn.Conv2d(ch[i], ch[i - 1], 1) for i in reversed(range(1, len(ch))))
        self.out = nn.Sequential(nn.GroupNorm(g, ch[0]), nn.SiLU(),
                                 _zero(nn.Conv2d(ch[0], cfg.out_channels or cfg.in_channels, 3, padding=1)))

    @property
    def null_label(self) -> int | None:
        return self.label_embed.null if self.label_embed is not None else None

    def embed(self, t, y=None):
        emb = self.time_embed(t)
        if self.label_embed is not None:
            y = with_null(y, t, self.label_embed.null)
            emb = emb + self.label_embed(y)
        return emb

    def context(self, y):
        """The tokens (N, K, dim) that cross-attention layers attend to; None: this network has none."""
        return None

    @property
    def input_shape(self) -> tuple:
        """(C, H, W) this network takes, None where any size works (H and W must halve cleanly at every level)."""
        return (self.cfg.in_channels, None, None)

    def encode(self, x, t, y=None):
        """The left side of the U and the bottleneck: (h, skips, emb), h the bottleneck's output, skips the output
        of every down level (highest resolution first), emb the embedding of (t, y) that the decoder needs."""
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        emb = self.embed(t, y)
        context = self.context(y)
        h, skips = self.stem(x), []
        for i, level in enumerate(self.down):
            h = level(h, emb, context)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)                        # 28 -> 14 -> 7
        for block in self.mid:
            h = block(h, emb)
        return h, skips, emb

    def forward(self, x, t, y=None):
        h, skips, emb = self.encode(x, t, y)
        skips, context = list(skips), self.context(y)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb, context)
            if i < len(self.up) - 1:
                h = F.interpolate(self.up_proj[i](h), scale_factor=2, mode="nearest")   # 7 -> 14 -> 28
        return self.out(h)
