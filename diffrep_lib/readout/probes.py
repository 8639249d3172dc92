"""Probes on frozen features (survey §3.1.1-§3.1.2; ch. 4): what the Fig. 4 framework trains on top of a
diffusion network's activations.

- `linear_probe`, `knn_accuracy`, `few_label_probe`: classification from standardised feature vectors, with one
  fixed optimiser and budget (`ProbeConfig`) for every cell of a grid, so cells differ only by their features;
- `PixelMLP`, `train_pixel_ensemble`, `predict_pixels`, `miou`: DDPM-Seg's per-pixel MLP ensemble;
- `match_points`, `pck`: DIFT's nearest-neighbour correspondence and its metric;
- `Hyperfeatures`, `correspondence_loss`: Diffusion Hyperfeatures' learned per-(t, layer) mixture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def standardize(train: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """z-score every feature with the training set's mean and standard deviation."""
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp(min=1e-6)
    return tuple((x - mean) / std for x in (train, *others))


@dataclass(frozen=True)
class ProbeConfig:
    steps: int = 150           # full-batch Adam steps on the multinomial logistic loss (on Fashion-MNIST
    lr: float = 0.02           # features, within 0.5 points of 300 steps at lr 0.01, at half the cost)
    weight_decay: float = 1e-4
    seed: int = 0


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 cfg: ProbeConfig = ProbeConfig()) -> float:
    """Test accuracy of a linear classifier trained on standardised frozen features (N, D), on their device."""
    train_x, test_x = standardize(train_x.float(), test_x.float())
    train_y, test_y = train_y.to(train_x.device), test_y.to(train_x.device)
    classes = int(max(train_y.max(), test_y.max())) + 1
    g = torch.Generator().manual_seed(cfg.seed)
    head = nn.Linear(train_x.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=g))
        head.bias.zero_()
    head = head.to(train_x.device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    with torch.enable_grad():                        # also when called under no_grad (an evaluation)
        for _ in range(cfg.steps):
            loss = F.cross_entropy(head(train_x), train_y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (head(test_x).argmax(1) == test_y).float().mean().item()


@torch.no_grad()
def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 20) -> float:
    """Test accuracy of a k-nearest-neighbour vote by cosine similarity of standardised features."""
    train_x, test_x = (F.normalize(z, dim=1) for z in standardize(train_x.float(), test_x.float()))
    neighbours = (test_x @ train_x.T).topk(k, dim=1).indices
    votes = F.one_hot(train_y[neighbours], int(train_y.max()) + 1).sum(1)
    return (votes.argmax(1) == test_y).float().mean().item()


def few_label_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, per_class: int = 10,
                    draws: int = 5, cfg: ProbeConfig = ProbeConfig()) -> tuple[float, float]:
    """Linear probe from `per_class` labels per class, over `draws` fixed random draws: (mean, std)."""
    accs = []
    for d in range(draws):
        g = torch.Generator().manual_seed(1000 + d)
        picks = []
        for c in train_y.unique():
            members = torch.nonzero(train_y == c).flatten()
            picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
        idx = torch.cat(picks)
        accs.append(linear_probe(train_x[idx], train_y[idx], test_x, test_y, cfg))
    acc = torch.tensor(accs)
    return acc.mean().item(), acc.std().item() if draws > 1 else 0.0


# ----------------------------------------------------------------------------------- DDPM-Seg: pixel MLPs

class PixelMLP(nn.Module):
    """DDPM-Seg's per-pixel classifier: F -> 128 -> ReLU -> BN -> 32 -> ReLU -> BN -> classes."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.BatchNorm1d(128),
                                 nn.Linear(128, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Linear(32, classes))
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.net(x)


def _pixels(feats: Tensor) -> Tensor:
    return feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])


def train_pixel_ensemble(feats: Tensor, masks: Tensor, classes: int, models: int = 5, steps: int = 400,
                         batch: int = 256, lr: float = 1e-3, seed: int = 0) -> list[PixelMLP]:
    """An ensemble of pixel MLPs trained on the pixels of labelled images: feats (N, F, H, W) at the masks'
    resolution, masks (N, H, W) class ids. Each member has its own initialisation and pixel order."""
    x, y = _pixels(feats.float()), masks.flatten()
    out = []
    for m in range(models):
        g = torch.Generator().manual_seed(seed * 100 + m)
        torch.manual_seed(seed * 100 + m)
        mlp = PixelMLP(x.shape[1], classes)
        opt = torch.optim.Adam(mlp.parameters(), lr=lr)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=g)
            loss = F.cross_entropy(mlp(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append(mlp.eval())
    return out


@torch.no_grad()
def predict_pixels(models: list[PixelMLP], feats: Tensor) -> Tensor:
    """Per-pixel majority vote of the ensemble: (N, F, H, W) features -> (N, H, W) class ids."""
    x = _pixels(feats.float())
    votes = torch.stack([m(x).argmax(1) for m in models])                   # (models, pixels)
    n, _, h, w = feats.shape
    return torch.mode(votes, dim=0).values.reshape(n, h, w)


def miou(pred: Tensor, target: Tensor, classes: int) -> float:
    """Mean intersection over union over the classes that occur in the target or the prediction."""
    ious = []
    for c in range(classes):
        p, t = pred == c, target == c
        union = (p | t).sum()
        if union:
            ious.append((p & t).sum() / union)
    return torch.stack(ious).float().mean().item()


# --------------------------------------------------------------------------------- DIFT: correspondence

@torch.no_grad()
def match_points(src: Tensor, tgt: Tensor, points: Tensor, image_size: int) -> Tensor:
    """DIFT's matching: upsample both feature maps (C, h, w) to the image size, L2-normalise the channels, and
    send each source point (K, 2) in pixel (x, y) to the target pixel of highest cosine similarity."""
    up = lambda f: F.normalize(F.interpolate(f[None].float(), size=(image_size, image_size), mode="bilinear",
                                             align_corners=False)[0], dim=0)
    s, t = up(src), up(tgt)
    px = points.clamp(0, image_size - 1e-3).floor().long()
    query = s[:, px[:, 1], px[:, 0]]                                        # (C, K)
    best = (query.T @ t.flatten(1)).argmax(1)                               # (K,)
    return torch.stack([best % image_size, best // image_size], 1).float() + 0.5


def pck(pred: Tensor, gt: Tensor, threshold: float) -> float:
    """Percentage of correct keypoints: the share of predictions within `threshold` pixels of the truth."""
    return ((pred - gt).norm(dim=-1) <= threshold).float().mean().item()


def keypoint_pck(maps: Tensor, keypoints: Tensor, visible: Tensor, pairs: Tensor, image_size: int,
                 threshold: float) -> tuple[float, list[tuple[Tensor, Tensor]]]:
    """DIFT on a set of pairs: maps (N, C, h, w) per image; keypoints (N, S, K, 2) and visible (N, S, K) as toy
    scenes ship them; pairs (P, 4) = (i, slot i, j, slot j). Every keypoint visible in both images is matched
    from i to j. Returns (PCK at `threshold` pixels, [(predicted, true) points per pair])."""
    hits, matches = [], []
    for i, si, j, sj in pairs.tolist():
        both = visible[i, si] & visible[j, sj]
        pred = match_points(maps[i], maps[j], keypoints[i, si][both], image_size)
        true = keypoints[j, sj][both]
        hits.append((pred - true).norm(dim=-1) <= threshold)
        matches.append((pred, true))
    return torch.cat(hits).float().mean().item(), matches


# ------------------------------------------------------------------------ Diffusion Hyperfeatures

class Hyperfeatures(nn.Module):
    """A learned mixture of feature maps over (timestep, layer): a bottleneck per layer (shared across timesteps)
    maps each map to `dim` channels at `size` x `size`; softmax weights over the (t, layer) pairs mix them."""

    def __init__(self, channels: dict[str, int], timesteps, dim: int = 32, size: int = 16):
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
        w = self.weights()
        out = 0
        for i, t in enumerate(self.timesteps):
            for j, layer in enumerate(self.layers):
                f = self.bottleneck[layer.replace(".", "_")](maps[(t, layer)].float())
                out = out + w[i, j] * F.interpolate(f, size=(self.size, self.size), mode="bilinear",
                                                    align_corners=False)
        return out


def correspondence_loss(fa: Tensor, fb: Tensor, pa: Tensor, pb: Tensor, image_size: int,
                        temperature: float = 0.07) -> Tensor:
    """Hyperfeatures' training loss for one image pair: features (C, s, s); matching points pa, pb (K, 2) in
    pixels. Cross-entropy of each source point's cosine similarities over the target cells against the cell of
    its match, in both directions."""
    s = fa.shape[-1]
    cell = lambda p: (p.clamp(0, image_size - 1e-3) * s / image_size).floor().long()
    a, b = F.normalize(fa.flatten(1), dim=0), F.normalize(fb.flatten(1), dim=0)      # (C, s*s)
    ca, cb = cell(pa), cell(pb)
    ia, ib = ca[:, 1] * s + ca[:, 0], cb[:, 1] * s + cb[:, 0]
    logits_ab = a[:, ia].T @ b / temperature                                         # (K, s*s)
    logits_ba = b[:, ib].T @ a / temperature
    return 0.5 * (F.cross_entropy(logits_ab, ib) + F.cross_entropy(logits_ba, ia))
