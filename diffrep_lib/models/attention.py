"""Multi-head self-attention and the transformer MLP shared by the token backbones (DiT, U-ViT; ch. 2)."""
from __future__ import annotations

from torch import nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    """softmax(QK^T / sqrt(d_head)) V over the tokens, per head, then an output projection. (N, T, D) -> same."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def identity(self, x):
        """The output with the attention matrix replaced by the identity (every token attends only to itself, so the
        attention returns V): perturbed-attention guidance's perturbed path."""
        n, t, d = x.shape
        return self.proj(self.qkv(x).reshape(n, t, 3, d)[:, :, 2])

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)                # (N, heads, T, d_head)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


def mlp(dim: int, ratio: float) -> nn.Sequential:
    """Linear -> GELU(tanh) -> Linear with a hidden width of ratio * dim."""
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
