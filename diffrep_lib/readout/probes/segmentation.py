"""DDPM-Seg's readout (survey §3.1.1; ch. 4): an ensemble of per-pixel MLPs on upsampled activations, their
majority vote, and the mean intersection over union that scores it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import InputError, bad, check_int
from ._checks import _maps, _positive, _tensor


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


def _class_map(x, name: str, classes: int, shape=None, like: str = "") -> Tensor:
    """A map of class ids in [0, classes), of the given shape when one is given."""
    x = _tensor(x, name, "class ids")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise bad(InputError, name, x, f"pass one class id per pixel, shape {tuple(shape)}{like}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise bad(InputError, name, x, "pass integer class ids: x.long()")
    if not x.numel():
        raise bad(InputError, name, x, "pass at least one pixel", "empty")
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= classes:
        raise bad(InputError, name, x, f"pass ids in 0..{classes - 1}, or the number of classes as classes "
                  f"(at least {hi + 1})", f"ids from {lo} to {hi} with classes={classes}")
    return x


def train_pixel_ensemble(feats: Tensor, masks: Tensor, classes: int, models: int = 5, steps: int = 400,
                         batch: int = 256, lr: float = 1e-3, seed: int = 0) -> list[PixelMLP]:
    """An ensemble of pixel MLPs trained on the pixels of labelled images: feats (N, F, H, W) at the masks'
    resolution, masks (N, H, W) class ids. Each member has its own initialisation and pixel order."""
    classes = check_int(classes, "classes", low=1, fix="pass the number of classes, e.g. len(toy_scenes.CLASSES)")
    feats = _maps(feats, "feats")
    n, _, h, w = feats.shape
    masks = _class_map(masks, "masks", classes, (n, h, w), " (feats is (N, F, H, W); upsample the features to "
                       "the masks' size with framework.dense_features(..., size=H))")
    if masks.dtype not in (torch.int64, torch.uint8):
        masks = masks.long()
    models = check_int(models, "models", low=1, fix="pass a positive ensemble size (5 by default)")
    steps = check_int(steps, "steps", low=1, fix="pass a positive number of training steps")
    batch = check_int(batch, "batch", low=2, fix="pass a batch of at least 2 pixels (the MLPs' BatchNorm needs two)")
    _positive(lr, "lr", "pass a positive, finite learning rate (1e-3 by default)")
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
    if isinstance(models, nn.Module) or not len(models) or not all(isinstance(m, nn.Module) for m in models):
        raise bad(InputError, "models", models, "pass the list of MLPs that train_pixel_ensemble returned")
    feats = _maps(feats, "feats")
    width = models[0].net[0].in_features if isinstance(models[0], PixelMLP) else feats.shape[1]
    if feats.shape[1] != width:
        raise bad(InputError, "feats", feats, f"pass features of the {width} channels the ensemble was trained on "
                  "(the same layers, t and standardisation)", f"{feats.shape[1]} channels")
    x = _pixels(feats.float())
    votes = torch.stack([m(x).argmax(1) for m in models])                   # (models, pixels)
    n, _, h, w = feats.shape
    return torch.mode(votes, dim=0).values.reshape(n, h, w)


def miou(pred: Tensor, target: Tensor, classes: int) -> float:
    """Mean intersection over union over the classes that occur in the target or the prediction: pred and
    target of one shape, class ids in 0..classes-1."""
    classes = check_int(classes, "classes", low=1, fix="pass the number of classes")
    target = _class_map(target, "target", classes)
    pred = _class_map(pred, "pred", classes, target.shape, " (the target's shape)")
    ious = []
    for c in range(classes):
        p, t = pred == c, target == c
        union = (p | t).sum()
        if union:
            ious.append((p & t).sum() / union)
    return torch.stack(ious).float().mean().item()
