"""SimCLR as a zoo method (Chen et al. 2020; survey §3.2; chs. 9 and 12): the book trains its own self-supervised
encoder, the stand-in for DINOv2 (whose weights cannot be downloaded everywhere the book runs).

- `augment`: SimCLR's view generator for grey-scale images, batched on the tensor (random resized crop, flip,
  brightness/contrast jitter), one draw per image from a seeded generator;
- `nt_xent`: SimCLR's normalised-temperature cross-entropy between two views (Chen et al. 2020, Eq. 1);
- the zoo method "contrastive": NT-Xent on two views of each image, evaluated by linear and k-NN probes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, bad
from .. import data
from ..readout import probes
from ..zoo import registry


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
        raise bad(InputError, "z2", z2, f"pass two views of the same shape, {tuple(z1.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, partner, reduction="none")
    return 0.5 * (loss[:n] + loss[n:])


def contrastive_terms(net, x: Tensor, y=None, *, generator=None, temperature: float = 0.2, **_) -> dict[str, Tensor]:
    """SimCLR: two random views of each image, pooled encoder embeddings through the projection head, NT-Xent
    per sample (labels unused)."""
    v1, v2 = augment(x, generator), augment(x, generator)
    z = net.head(net(torch.cat([v1, v2])).mean(1))
    return {"nt_xent": nt_xent(*z.chunk(2), temperature)}


@torch.no_grad()
def probe_embeddings(model, r) -> dict:
    """The encoder's pooled embeddings probed with 5,000 labelled training images, scored on the held-out set."""
    x, y = data.held_out(r.data)
    xt, yt = data.fashion_mnist.tensors("train")
    xt, yt = xt[:5000], yt[:5000]
    emb = lambda images: torch.cat([model.pooled(images[i:i + 500]) for i in range(0, len(images), 500)])
    ft, fe = emb(xt), emb(x)
    return {"linear_probe": round(probes.linear_probe(ft, yt, fe, y), 4),
            "knn": round(probes.knn_accuracy(ft, yt, fe, y), 4)}


registry.register(registry.METHODS, "contrastive", registry.Method(terms=contrastive_terms, evaluate=probe_embeddings))
