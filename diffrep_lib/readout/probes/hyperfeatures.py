"""Diffusion Hyperfeatures (survey §3.1.1; ch. 4): a learned mixture of feature maps over (timestep, layer),
and the pairwise correspondence loss that trains it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import InputError, bad, check_int


class Hyperfeatures(nn.Module):
    """A learned mixture of feature maps over (timestep, layer): a bottleneck per layer (shared across timesteps)
    maps each map to `dim` channels at `size` x `size`; softmax weights over the (t, layer) pairs mix them."""

    def __init__(self, channels: dict[str, int], timesteps, dim: int = 32, size: int = 16):
        if not isinstance(channels, dict) or not channels or not all(
                isinstance(l, str) and not isinstance(c, bool) and isinstance(c, int) and c > 0
                for l, c in channels.items()):
            raise bad(InputError, "channels", channels, "pass {layer: channels} for at least one layer, e.g. "
                      "{'up.1': 64}")
        ts = [] if isinstance(timesteps, str) or not hasattr(timesteps, "__iter__") else list(timesteps)
        if not ts or len({str(t) for t in ts}) != len(ts):
            raise bad(InputError, "timesteps", timesteps, "pass a list of distinct timesteps, e.g. (10, 50)")
        dim = check_int(dim, "dim", low=1, fix="pass a positive bottleneck width divisible by 8 (or below 8)")
        if dim % min(8, dim):
            raise bad(InputError, "dim", dim, "pass a bottleneck width divisible by 8, or below 8 (GroupNorm)")
        size = check_int(size, "size", low=1, fix="pass the output side in cells, e.g. image_size // 2")
        super().__init__()
        self.layers, self.timesteps, self.size = list(channels), list(timesteps), size
        self.bottleneck = nn.ModuleDict({l.replace(".", "_"): nn.Sequential(
            nn.Conv2d(c, dim, 1), nn.GroupNorm(min(8, dim), dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1))
            for l, c in channels.items()})
        self.logits = nn.Parameter(torch.zeros(len(self.timesteps), len(self.layers)))

    def weights(self) -> Tensor:
        """Mixing weights (timesteps, layers), summing to one."""
        return self.logits.flatten().softmax(0).view_as(self.logits)

    def forward(self, maps: dict) -> Tensor:
        """maps[(t, layer)] (N, C_layer, h, w) -> hyperfeature (N, dim, size, size)."""
        if not isinstance(maps, dict):
            raise bad(InputError, "maps", maps, "pass {(t, layer): (N, C, h, w)}, as framework.feature_maps returns")
        missing = [(t, l) for t in self.timesteps for l in self.layers if (t, l) not in maps]
        if missing:
            raise bad(InputError, "maps", sorted(maps, key=str)[:6], f"pass a map for every (t, layer) of the "
                      f"mixture; missing {missing[:6]}")
        w = self.weights()
        out = 0
        for j, layer in enumerate(self.layers):
            # sum_t w_tj resize(conv(h_t)) = resize(conv(sum_t w_tj h_t)): the bottleneck's last convolution and the
            # resize are linear, so they run once per layer on the timesteps' weighted sum (the bias weighted by
            # sum_t w_tj), not once per (t, layer): the same mixture, a training step about a third faster.
            bottleneck = self.bottleneck[layer.replace(".", "_")]
            head, conv = bottleneck[:-1], bottleneck[-1]
            h = sum(w[i, j] * head(maps[(t, layer)].float()) for i, t in enumerate(self.timesteps))
            f = F.conv2d(h, conv.weight, None, padding=conv.padding) + w[:, j].sum() * conv.bias[:, None, None]
            out = out + F.interpolate(f, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return out


def correspondence_loss(fa: Tensor, fb: Tensor, pa: Tensor, pb: Tensor, image_size: int,
                        temperature: float = 0.07) -> Tensor:
    """Hyperfeatures' training loss for one image pair: features (C, s, s); matching points pa, pb (K, 2) in
    pixels. Cross-entropy of each source point's cosine similarities over the target cells against the cell of
    its match, in both directions."""
    if not isinstance(fa, Tensor) or fa.dim() != 3 or fa.shape[1] != fa.shape[2]:
        raise bad(InputError, "fa", fa, "pass one image's hyperfeature (C, s, s), e.g. head(maps)[0]")
    if not isinstance(fb, Tensor) or fb.shape != fa.shape:
        raise bad(InputError, "fb", fb, f"pass the other image's hyperfeature, shaped like fa: {tuple(fa.shape)}")
    if not isinstance(pa, Tensor) or pa.dim() != 2 or pa.shape[1] != 2 or not len(pa):
        raise bad(InputError, "pa", pa, "pass at least one matching point as a (K, 2) tensor of pixels (x, y); "
                  "skip pairs without common visible keypoints",
                  "no points: the loss would be NaN" if isinstance(pa, Tensor) and pa.dim() == 2 and not len(pa)
                  else "")
    if not isinstance(pb, Tensor) or pb.shape != pa.shape:
        raise bad(InputError, "pb", pb, f"pass one match per point of pa, shape {tuple(pa.shape)}")
    check_int(image_size, "image_size", low=1, fix="pass the images' side in pixels")
    if not temperature > 0:
        raise bad(InputError, "temperature", temperature, "pass a positive temperature (0.07 by default)")
    s = fa.shape[-1]
    cell = lambda p: (p.clamp(0, image_size - 1e-3) * s / image_size).floor().long()
    a, b = F.normalize(fa.flatten(1), dim=0), F.normalize(fb.flatten(1), dim=0)      # (C, s*s)
    ca, cb = cell(pa), cell(pb)
    ia, ib = ca[:, 1] * s + ca[:, 0], cb[:, 1] * s + cb[:, 0]
    logits_ab = a[:, ia].T @ b / temperature                                         # (K, s*s)
    logits_ba = b[:, ib].T @ a / temperature
    return 0.5 * (F.cross_entropy(logits_ab, ib) + F.cross_entropy(logits_ba, ia))
