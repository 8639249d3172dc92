"""Self-supervised learning pieces (survey §3.2; chs. 9 and 12): the book trains its own encoder, since no DINOv2 or
MoCo weights can be downloaded here.

- `augment`: SimCLR's view generator for grey-scale images, batched on the tensor (random resized crop, flip,
  brightness/contrast jitter), one draw per image from a seeded generator;
- `nt_xent`: SimCLR's normalised-temperature cross-entropy between two views (Chen et al. 2020, Eq. 1);
- `sinkhorn_knopp`: balanced soft assignments of samples to prototypes (SwAV; online guidance's cluster ids).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(x: Tensor, generator: torch.Generator | None = None, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
            flip: float = 0.5, brightness: float = 0.4, contrast: float = 0.4) -> Tensor:
    """One random view of each image x (N, C, H, W) in [-1, 1]: a crop of `scale` of the area and aspect `ratio`,
    resized back to H x W (bilinear), a horizontal flip with probability `flip`, then contrast and brightness
    jitter by factors in [1 - c, 1 + c] and shifts in [-b, b] (in units of the [-1, 1] range). Values are clamped
    to [-1, 1]. Everything is drawn on the CPU generator, so a seed fixes the views."""
    n = x.shape[0]
    u = lambda: torch.rand(n, generator=generator).to(x.device, x.dtype)
    area = scale[0] + (scale[1] - scale[0]) * u()
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u()
    aspect = log_r.exp()
    w = (area * aspect).sqrt().clamp(max=1.0)                 # crop width and height as fractions of the image
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = (2 * u() - 1) * (1 - w)                              # crop centre in [-1, 1] coordinates, inside the image
    cy = (2 * u() - 1) * (1 - h)
    sign = torch.where(u() < flip, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    view = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = 1 + contrast * (2 * u() - 1)
    b = brightness * (2 * u() - 1)
    mean = view.mean(dim=(1, 2, 3), keepdim=True)
    view = (view - mean) * c[:, None, None, None] + mean + b[:, None, None, None]
    return view.clamp(-1, 1)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.2) -> Tensor:
    """Per-sample NT-Xent loss (N,) for two views' embeddings z1, z2 (N, D): each embedding must pick its partner
    out of the other 2N - 2 embeddings of the batch by cosine similarity / temperature."""
    if z1.shape != z2.shape:
        raise ValueError(f"the two views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, partner, reduction="none")
    return 0.5 * (loss[:n] + loss[n:])


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Soft assignments Q (N, K) of N samples to K prototypes from their similarity scores (N, K), with every
    prototype used equally often (SwAV, Caron et al. 2020): Q = diag(u) exp(scores / epsilon) diag(v), rows
    summing to 1 and columns to N / K after enough iterations."""
    q = torch.exp((scores - scores.max()) / epsilon).T               # (K, N)
    q /= q.sum()
    k, n = q.shape
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= n
    return (q * n).T                                                  # rows sum to 1
