"""Probes on frozen features (survey §3.1.1-§3.1.2; ch. 4): what the Fig. 4 framework trains on top of a
diffusion network's activations.

- `linear_probe`, `knn_accuracy`, `few_label_probe`: classification from standardised feature vectors, with one
  fixed optimiser and budget (`ProbeConfig`) for every cell of a grid, so cells differ only by their features;
- `PixelMLP`, `train_pixel_ensemble`, `predict_pixels`, `miou`: DDPM-Seg's per-pixel MLP ensemble;
- `match_points`, `pck`: DIFT's nearest-neighbour correspondence and its metric;
- `Hyperfeatures`, `correspondence_loss`: Diffusion Hyperfeatures' learned per-(t, layer) mixture.

Every public function checks its arguments once, at the boundary, and raises `errors.InputError` naming the
argument, the value received and what to do (features of the wrong shape or width, labels of the wrong length,
dtype or range, NaN or inf, a single training class, k outside 1..N, ...); the computations are unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, bad, check_int, finite


# ------------------------------------------------------------------------------- argument checks



def _positive(value, name: str, fix: str, zero: bool = False) -> float:
    """value as a finite number > 0 (>= 0 with zero=True), or the InputError that says so."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        v = math.nan
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero):
        raise bad(InputError, name, value, fix)
    return v


def _tensor(x, name: str, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise bad(InputError, name, x, f"pass {what} as a torch tensor (torch.as_tensor(...))")
    return x




def _vectors(x, name: str, rows: int = 1) -> Tensor:
    """Frozen features: a real 2-D (N, D) tensor, N >= rows, D >= 1, all finite."""
    x = _tensor(x, name, "features (N, D)")
    if x.dim() != 2:
        fix = ("pool or flatten the maps to one vector per example first: features.pool(maps, size) or x.flatten(1)"
               if x.dim() > 2 else "pass one row per example, (N, D): x[:, None] for a single feature")
        raise bad(InputError, name, x, fix, "features must be 2-D (N, D)")
    if x.is_complex() or x.dtype == torch.bool:
        raise bad(InputError, name, x, "pass real-valued features: x.float()")
    if len(x) < rows or x.shape[1] < 1:
        raise bad(InputError, name, x, f"pass at least {rows} example(s) with at least one feature each",
                  "empty" if not x.numel() else f"{len(x)} example(s)")
    finite(x, name, "drop or repair the examples with NaN or inf features (a diverged network or a bad "
                     "normalisation upstream)")
    return x


def _class_ids(y, name: str, n: int, rows: str) -> Tensor:
    """Class labels: an integer 1-D tensor of length n with ids >= 0, as int64."""
    y = _tensor(y, name, "class labels (N,)")
    if y.dim() != 1:
        fix = ("pass class ids, not one-hot rows: y.argmax(1)" if y.dim() == 2 and y.shape[1] > 1 else
               "pass a 1-D tensor of class ids: y.flatten()")
        raise bad(InputError, name, y, fix, "labels must be 1-D")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise bad(InputError, name, y, "pass integer class ids 0..C-1: y.long() if they are whole numbers")
    if len(y) != n:
        raise bad(InputError, name, y, f"pass one label per row of {rows}", f"{len(y)} labels for {n} rows")
    if n and int(y.min()) < 0:
        raise bad(InputError, name, y, "pass class ids 0..C-1 (remap with torch.unique(y, return_inverse=True)[1])",
                  f"ids from {int(y.min())} to {int(y.max())}")
    return y if y.dtype == torch.int64 else y.long()


def check_inputs(train_x, train_y, test_x, test_y,
                 names=("train_x", "train_y", "test_x", "test_y")) -> tuple[Tensor, Tensor]:
    """The checks every probe runs on (N, D) features and their class labels (`names` as the messages call them);
    returns the labels as int64. framework.probe_grid runs them on every cell before training any probe."""
    nx, ny, tx, ty = names
    train_x, test_x = _vectors(train_x, nx, rows=2), _vectors(test_x, tx)
    if test_x.shape[1] != train_x.shape[1]:
        raise bad(InputError, tx, test_x, f"pass test features of the training features' width, "
                  f"{train_x.shape[1]} (the same t, layers and pooling)",
                  f"{test_x.shape[1]} features per example against {train_x.shape[1]} in {nx}")
    if test_x.device != train_x.device:
        raise bad(InputError, tx, test_x, f"put train and test features on one device: .to({str(train_x.device)!r})",
                  f"on {test_x.device}, {nx} on {train_x.device}")
    train_y, test_y = _class_ids(train_y, ny, len(train_x), nx), _class_ids(test_y, ty, len(test_x), tx)
    classes = train_y.unique()
    if len(classes) < 2:
        raise bad(InputError, ny, train_y, "pass training examples of at least two classes (shuffle before "
                  "splitting)", f"every label is {int(classes[0])}: a probe cannot learn to tell classes apart")
    return train_y, test_y


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

    def __post_init__(self):
        check_int(self.steps, "ProbeConfig.steps", low=1, fix="pass a positive number of optimiser steps (150 by default)")
        _positive(self.lr, "ProbeConfig.lr", "pass a positive, finite learning rate (0.02 by default)")
        _positive(self.weight_decay, "ProbeConfig.weight_decay", "pass a finite weight decay >= 0", zero=True)
        check_int(self.seed, "ProbeConfig.seed", low=0, fix="pass a non-negative integer seed")


def check_config(cfg) -> None:
    """A ProbeConfig, or the InputError that says so."""
    if not isinstance(cfg, ProbeConfig):
        raise bad(InputError, "cfg", cfg, "pass a ProbeConfig, e.g. ProbeConfig(steps=300)")


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 cfg: ProbeConfig = ProbeConfig()) -> float:
    """Test accuracy of a linear classifier trained on standardised frozen features (N, D), on their device.
    Labels are class ids 0..C-1 (any integer dtype); the training labels must hold at least two classes."""
    check_config(cfg)
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    return _linear_probe(train_x, train_y, test_x, test_y, cfg)


def _linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, cfg: ProbeConfig) -> float:
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


def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 20) -> float:
    """Test accuracy of a k-nearest-neighbour vote by cosine similarity of standardised features;
    1 <= k <= the number of training examples."""
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    k = _check_k(k, len(train_x))
    return _knn_accuracy(train_x, train_y, test_x, test_y, k)


def _check_k(k, n: int, name: str = "k") -> int:
    return check_int(k, name, low=1, high=n, fix=f"pass an integer k with 1 <= k <= {n}, the number of training examples")


@torch.no_grad()
def _knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int) -> float:
    train_x, test_x = (F.normalize(z, dim=1) for z in standardize(train_x.float(), test_x.float()))
    neighbours = (test_x @ train_x.T).topk(k, dim=1).indices
    votes = F.one_hot(train_y[neighbours], int(train_y.max()) + 1).sum(1)
    return (votes.argmax(1) == test_y).float().mean().item()


def few_label_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, per_class: int = 10,
                    draws: int = 5, cfg: ProbeConfig = ProbeConfig()) -> tuple[float, float]:
    """Linear probe from `per_class` labels per class, over `draws` fixed random draws: (mean, std).
    Every class of train_y must have at least `per_class` examples."""
    check_config(cfg)
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    per_class = check_int(per_class, "per_class", low=1, fix="pass a positive number of labelled examples per class")
    draws = check_int(draws, "draws", low=1, fix="pass a positive number of random draws (5 by default)")
    classes, counts = train_y.unique(return_counts=True)
    if per_class > int(counts.min()):
        c = int(classes[counts.argmin()])
        raise bad(InputError, "per_class", per_class, f"pass per_class <= {int(counts.min())}, or more training "
                  f"examples of class {c}", f"class {c} has only {int(counts.min())} training examples: every draw "
                  "would take all of them")
    accs = []
    for d in range(draws):
        g = torch.Generator().manual_seed(1000 + d)
        picks = []
        for c in train_y.unique():
            members = torch.nonzero(train_y == c).flatten()
            picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
        idx = torch.cat(picks)
        accs.append(_linear_probe(train_x[idx], train_y[idx], test_x, test_y, cfg))
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


def _maps(feats, name: str) -> Tensor:
    """Per-pixel features (N, F, H, W): real, non-empty, finite."""
    feats = _tensor(feats, name, "per-pixel features (N, F, H, W)")
    if feats.dim() != 4 or feats.is_complex() or feats.dtype == torch.bool or not feats.numel():
        raise bad(InputError, name, feats, "pass per-pixel features (N, F, H, W) at the masks' resolution "
                  "(framework.dense_features returns them)")
    finite(feats, name, "drop or repair the images with NaN or inf features")
    return feats


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


# --------------------------------------------------------------------------------- DIFT: correspondence

def _points(p, name: str, image_size: int, rows: int = 0, shown=None) -> Tensor:
    """Points (K, 2) in pixel (x, y) inside the image (one pixel of slack), K >= rows, finite; errors show
    `shown` (the whole argument) when the points are a selection of it."""
    shown = p if shown is None else shown
    p = _tensor(p, name, "points (K, 2) in pixels (x, y)")
    if p.dim() != 2 or p.shape[1] != 2 or p.is_complex() or p.dtype == torch.bool:
        raise bad(InputError, name, shown, "pass points as a (K, 2) tensor of pixel coordinates (x, y)")
    if len(p) < rows:
        raise bad(InputError, name, shown, f"pass at least {rows} point(s)", "empty")
    if p.is_floating_point() and not torch.isfinite(p).all():
        raise bad(InputError, name, shown, "drop the points with NaN or inf coordinates", "NaN or inf coordinates")
    if len(p) and (float(p.min()) < -1 or float(p.max()) > image_size + 1):
        raise bad(InputError, name, shown, f"pass pixel coordinates (x, y) in [0, {image_size}], the scale of "
                  "image_size (not normalised, not at another resolution)",
                  f"coordinates from {float(p.min()):g} to {float(p.max()):g}")
    return p


def _feature_map(f, name: str) -> Tensor:
    f = _tensor(f, name, "a feature map (C, h, w)")
    if f.dim() != 3 or not f.numel() or f.is_complex() or f.dtype == torch.bool:
        fix = "pass one image's map (C, h, w): maps[i], not the batch" if f.dim() == 4 else \
            "pass one image's feature map (C, h, w)"
        raise bad(InputError, name, f, fix)
    return f


def match_points(src: Tensor, tgt: Tensor, points: Tensor, image_size: int) -> Tensor:
    """DIFT's matching: upsample both feature maps (C, h, w) to the image size, L2-normalise the channels, and
    send each source point (K, 2) in pixel (x, y) to the target pixel of highest cosine similarity."""
    image_size = check_int(image_size, "image_size", low=1, fix="pass the images' side in pixels")
    src, tgt = _feature_map(src, "src"), _feature_map(tgt, "tgt")
    if tgt.shape[0] != src.shape[0]:
        raise bad(InputError, "tgt", tgt, f"pass a target map with the source's {src.shape[0]} channels (the same "
                  "t and layer)")
    finite(src, "src", "repair the source features (NaN or inf: a diverged network upstream)")
    finite(tgt, "tgt", "repair the target features (NaN or inf: a diverged network upstream)")
    points = _points(points, "points", image_size)
    return _match_points(src, tgt, points, image_size)


@torch.no_grad()
def _match_points(src: Tensor, tgt: Tensor, points: Tensor, image_size: int) -> Tensor:
    up = lambda f: F.normalize(F.interpolate(f[None].float(), size=(image_size, image_size), mode="bilinear",
                                             align_corners=False)[0], dim=0)
    s, t = up(src), up(tgt)
    px = points.clamp(0, image_size - 1e-3).floor().long()
    query = s[:, px[:, 1], px[:, 0]]                                        # (C, K)
    best = (query.T @ t.flatten(1)).argmax(1)                               # (K,)
    return torch.stack([best % image_size, best // image_size], 1).float() + 0.5


def pck(pred: Tensor, gt: Tensor, threshold: float) -> float:
    """Percentage of correct keypoints: the share of predictions within `threshold` pixels of the truth."""
    pred, gt = _tensor(pred, "pred", "points (K, 2)"), _tensor(gt, "gt", "points (K, 2)")
    if pred.dim() < 2 or pred.shape[-1] != 2 or not pred.numel():
        raise bad(InputError, "pred", pred, "pass at least one predicted point, as a (K, 2) tensor of pixels (x, y)")
    if gt.shape != pred.shape:
        raise bad(InputError, "gt", gt, f"pass one true point per prediction, shape {tuple(pred.shape)}")
    finite(pred, "pred", "drop the points with NaN or inf coordinates")
    finite(gt, "gt", "drop the points with NaN or inf coordinates")
    _positive(threshold, "threshold", "pass a finite distance in pixels >= 0 (DIFT: 0.1 x the image size)", zero=True)
    return ((pred - gt).norm(dim=-1) <= threshold).float().mean().item()


def keypoint_pck(maps: Tensor, keypoints: Tensor, visible: Tensor, pairs: Tensor, image_size: int,
                 threshold: float) -> tuple[float, list[tuple[Tensor, Tensor]]]:
    """DIFT on a set of pairs: maps (N, C, h, w) per image; keypoints (N, S, K, 2) and visible (N, S, K) as toy
    scenes ship them; pairs (P, 4) = (i, slot i, j, slot j). Every keypoint visible in both images is matched
    from i to j. Returns (PCK at `threshold` pixels, [(predicted, true) points per pair])."""
    image_size = check_int(image_size, "image_size", low=1, fix="pass the images' side in pixels")
    _positive(threshold, "threshold", "pass a finite distance in pixels >= 0 (DIFT: 0.1 x the image size)", zero=True)
    maps = _maps(maps, "maps")
    keypoints = _tensor(keypoints, "keypoints", "keypoints (N, S, K, 2)")
    if keypoints.dim() != 4 or keypoints.shape[0] != len(maps) or keypoints.shape[-1] != 2 \
            or not keypoints.is_floating_point():
        raise bad(InputError, "keypoints", keypoints, f"pass keypoints (N, S, K, 2) in pixels (x, y), one row per "
                  f"map (N = {len(maps)}), as toy scenes ship them")
    visible = _tensor(visible, "visible", "a boolean mask (N, S, K)")
    if visible.shape != keypoints.shape[:-1] or visible.dtype != torch.bool:
        raise bad(InputError, "visible", visible, f"pass a bool mask of shape {tuple(keypoints.shape[:-1])}: "
                  "visible.bool() (integer masks would index points, not select them)")
    pairs = _tensor(pairs, "pairs", "pairs (P, 4)")
    if pairs.dim() != 2 or pairs.shape[1] != 4 or not len(pairs) or pairs.is_floating_point() \
            or pairs.dtype == torch.bool:
        raise bad(InputError, "pairs", pairs, "pass at least one pair as integer rows (i, slot i, j, slot j): "
                  "toy_scenes.pairs(scenes, n)")
    n, s = keypoints.shape[:2]
    if int(pairs.min()) < 0 or int(pairs[:, [0, 2]].max()) >= n or int(pairs[:, [1, 3]].max()) >= s:
        raise bad(InputError, "pairs", pairs, f"pass image indices in 0..{n - 1} and slots in 0..{s - 1}")
    a, sa, b, sb = pairs.T                                   # the points matched: sources visible in both images
    _points(keypoints[a, sa][visible[a, sa] & visible[b, sb]], "keypoints", image_size, shown=keypoints)
    hits, matches = [], []
    for i, si, j, sj in pairs.tolist():
        both = visible[i, si] & visible[j, sj]
        pred = _match_points(maps[i], maps[j], keypoints[i, si][both], image_size)
        true = keypoints[j, sj][both]
        hits.append((pred - true).norm(dim=-1) <= threshold)
        matches.append((pred, true))
    hits = torch.cat(hits)
    if not len(hits):
        raise bad(InputError, "pairs", pairs, "pass pairs that share a visible keypoint (toy_scenes.pairs picks "
                  "them)", "no keypoint is visible in both images of any pair: PCK is undefined")
    return hits.float().mean().item(), matches


# ------------------------------------------------------------------------ Diffusion Hyperfeatures

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
