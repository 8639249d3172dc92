"""The survey's Fig. 4 framework as reusable steps (§3.1, Eq. 16): choose a noise level t and blocks B, extract
the activations of B for x_t, train a light head on them, and search (t, B) for the best readout.

    vecs = feature_vectors(net, x, ts=(0, 25, 100), layers=["up.1", "mid.2"])   # {"25/up.1": (N, D), ...}
    best, grid = probe_grid(vecs_train, y_train, vecs_test, y_test)              # Eq. 16 over the grid
    maps = dense_features(net, x, t=50, layers=["up.0", "up.1"], size=32)        # DDPM-Seg / DIFT input

Every image gets one fixed noise draw eps (from `seed`), reused at every t: the cells of a grid then differ only
by t and the block, not by the luck of the noise (common random numbers). Work is done in batches, so a grid over
thousands of images fits in a laptop's memory.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.precision import bf16_autocast
from . import features, probes


def noise_draws(x: Tensor, seed: int, ensemble: int = 1) -> Tensor:
    """`ensemble` seeded noise draws shaped like x: ``(ensemble, *x.shape)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((ensemble, *x.shape), generator=g).to(x.device, x.dtype)


def cell(t: int, layer: str) -> str:
    """The key of one grid cell, "t/layer" (a string, so grids can be memoised as safetensors)."""
    return f"{t}/{layer}"


def split_cell(key: str) -> tuple[int, str]:
    t, layer = key.split("/", 1)
    return int(t), layer


@torch.no_grad()
def feature_vectors(model, x: Tensor, ts, layers, *, pool_size: int | None = 2, extras: int = 0, seed: int = 0,
                    batch: int = 500, bf16: bool = False) -> dict[str, Tensor]:
    """One pooled feature vector per image for every (t, layer): {cell(t, layer): (N, D)} (DDAE's readout).

    pool_size: average-pool each map to pool_size x pool_size (None: global average); extras: leading tokens to
    drop from transformer outputs (U-ViT's time and label tokens); bf16: run the network in bfloat16 autocast
    where the device computes bf16 natively (about twice as fast on a CPU with bf16 instructions; float32
    elsewhere); the features are returned in float32."""
    eps = noise_draws(x, seed)[0]
    out: dict[str, list[Tensor]] = {}
    for t in ts:
        for i in range(0, len(x), batch):
            with bf16_autocast(x.device, bf16):
                f = features.extract(model, x[i:i + batch], int(t), layers, noise=eps[i:i + batch])
            for layer in layers:
                out.setdefault(cell(t, layer), []).append(
                    features.pool(features.as_map(f[layer], extras), pool_size))
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def feature_maps(model, x: Tensor, ts, layers, *, ensemble: int = 1, seed: int = 0,
                 bf16: bool = False) -> dict[tuple, Tensor]:
    """The maps of every (t, layer) at the layers' own resolutions, {(t, layer): (N, C, h, w)}, averaged over
    `ensemble` noise draws (the same draws at every t). Transformer tokens are returned as they come."""
    eps = noise_draws(x, seed, ensemble)
    out = {}
    for t in ts:
        with bf16_autocast(x.device, bf16):
            f = features.extract(model, x, int(t), list(layers), noise=eps, ensemble=ensemble)
        out.update({(t, layer): v for layer, v in f.items()})
    return out


@torch.no_grad()
def dense_features(model, x: Tensor, t: int, layers, *, size: int, extras: int = 0, seed: int = 0,
                   ensemble: int = 1, batch: int = 200, bf16: bool = False) -> Tensor:
    """Per-pixel features (N, sum of channels, size, size): the maps of `layers` at timestep t, bilinearly
    upsampled to size x size and concatenated along channels (DDPM-Seg's pixel representation). With ensemble > 1
    the maps are averaged over that many noise draws (DIFT averages 8)."""
    eps = noise_draws(x, seed, ensemble)
    chunks = []
    for i in range(0, len(x), batch):
        with bf16_autocast(x.device, bf16):
            f = features.extract(model, x[i:i + batch], int(t), layers, noise=eps[:, i:i + batch], ensemble=ensemble)
        chunks.append(torch.cat([features.upsample(features.as_map(f[l], extras), (size, size)) for l in layers], 1))
    return torch.cat(chunks)


def probe_grid(train: dict[str, Tensor], train_y: Tensor, test: dict[str, Tensor], test_y: Tensor,
               probe: str = "linear", cfg: probes.ProbeConfig = probes.ProbeConfig()) -> tuple[str, dict[str, float]]:
    """Eq. 16 on a grid of feature vectors: the same probe (one optimiser and budget) on every cell.
    probe: 'linear' (test accuracy) or 'knn' (k = 20). Returns (best cell, {cell: accuracy})."""
    missing = sorted(set(train) ^ set(test))
    if missing:
        raise KeyError(f"cells {missing} are in only one of the train and test grids")
    if probe == "linear":
        score = lambda k: probes.linear_probe(train[k], train_y, test[k], test_y, cfg)
    elif probe == "knn":
        score = lambda k: probes.knn_accuracy(train[k], train_y, test[k], test_y)
    else:
        raise ValueError(f"unknown probe {probe!r}; choose 'linear' or 'knn'")
    return grid_search(score, list(train))


def grid_search(score, cells) -> tuple:
    """Eq. 16 itself: evaluate score(cell) on every cell of the grid (a cell is a (t, block) choice, in any
    spelling) and return (the best cell, {cell: score})."""
    grid = {c: score(c) for c in cells}
    return max(grid, key=grid.get), grid


def as_table(grid: dict[str, float], ts, layers) -> Tensor:
    """A grid {cell: value} as a (len(ts), len(layers)) tensor for heatmaps (NaN where a cell is missing)."""
    table = torch.full((len(ts), len(layers)), float("nan"))
    for i, t in enumerate(ts):
        for j, layer in enumerate(layers):
            table[i, j] = grid.get(cell(t, layer), float("nan"))
    return table
