"""The survey's Fig. 4 framework as reusable steps (§3.1, Eq. 16): choose a noise level t and blocks B, extract
the activations of B for x_t, train a light head on them, and search (t, B) for the best readout.

    vecs = feature_vectors(net, x, ts=(0, 25, 100), layers=["up.1", "mid.2"])   # {"25/up.1": (N, D), ...}
    best, grid = probe_grid(vecs_train, y_train, vecs_test, y_test)              # Eq. 16 over the grid
    scores = probe_scores(vecs_train, y_train, {"val": (vecs_val, y_val), "test": (vecs_test, y_test)})
    maps = dense_features(net, x, t=50, layers=["up.0", "up.1"], size=32)        # DDPM-Seg / DIFT input

Every image gets one fixed noise draw eps (from `seed`), reused at every t: the cells of a grid then differ only
by t and the block, not by the luck of the noise (common random numbers). Work is done in batches, so a grid over
thousands of images fits in a laptop's memory.

Misuse raises at the boundary: `errors.GridError` for a grid that cannot be searched (no cells, cells in only one
of the train and test grids, a cell whose score is NaN, repeated timesteps), `errors.InputError` for arguments of
the wrong kind; probes' own checks name the offending cell.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping

import torch
from torch import Tensor

from ..core.precision import bf16_autocast
from ..errors import GridError, InputError, bad, check_int
from ..support.runtime import feature_batch
from . import features, probes




def _images(x) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() < 2 or not len(x):
        raise bad(InputError, "x", x, "pass at least one clean image, as a float tensor (N, C, H, W)")
    return x


def _layers(layers) -> list[str]:
    """layers as a non-empty list of module paths without repeats (a repeat would stack its rows twice)."""
    if isinstance(layers, str) or not hasattr(layers, "__iter__") or not len(layers := list(layers)) \
            or not all(isinstance(l, str) and l for l in layers):
        raise bad(InputError, "layers", layers, "pass a non-empty list of module paths, e.g. ['up.1'] (a single "
                  "path still goes in a list)")
    if len(set(layers)) != len(layers):
        raise bad(InputError, "layers", layers, "list each module path once", "repeated paths")
    return layers


def _grid_axes(ts, layers) -> tuple[list, list[str]]:
    """ts and layers as non-empty lists without repeats."""
    if isinstance(ts, (str, bytes)) or not hasattr(ts, "__iter__") or not len(ts := list(ts)):
        raise bad(GridError, "ts", ts, "pass a non-empty list of integer timesteps, e.g. (0, 25, 100)")
    layers = _layers(layers)
    try:
        keys = [cell(t, layers[0]) for t in ts]
    except GridError:
        raise bad(GridError, "ts", ts, "pass integer timesteps, e.g. (0, 25, 100)") from None
    if len(set(keys)) != len(keys):
        raise bad(GridError, "ts", ts, "list each timestep once", "repeated timesteps")
    return ts, layers


def noise_draws(x: Tensor, seed: int, ensemble: int = 1) -> Tensor:
    """`ensemble` seeded noise draws shaped like x: ``(ensemble, *x.shape)``."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise bad(InputError, "x", x, "pass the float tensor the noise is for (images as x.float() in [-1, 1])")
    ensemble = check_int(ensemble, "ensemble", "pass a positive number of noise draws (1 = one draw)")
    g = torch.Generator().manual_seed(seed)
    return torch.randn((ensemble, *x.shape), generator=g).to(x.device, x.dtype)


def cell(t: int, layer: str) -> str:
    """The key of one grid cell, "t/layer" (a string, so grids can be memoised as safetensors). t is a whole-number
    timestep (an int, a NumPy integer or a 0-d tensor, spelt as its Python number)."""
    if isinstance(t, Tensor) and t.dim() == 0:
        t = t.item()
    try:
        if isinstance(t, bool):
            raise TypeError
        whole = float(t).is_integer() if isinstance(t, float) else operator.index(t) is not None
    except TypeError:
        whole = False
    if not whole:
        raise bad(GridError, "t", t, "pass an integer timestep, e.g. 25")
    if not isinstance(layer, str) or not layer:
        raise bad(InputError, "layer", layer, "pass a module path as a string, e.g. 'up.1'")
    return f"{int(t)}/{layer}"


def split_cell(key: str) -> tuple[int, str]:
    """The (t, layer) of a key made by `cell`."""
    t, sep, layer = key.partition("/") if isinstance(key, str) else ("", "", "")
    try:
        if not sep or not layer or not float(t).is_integer():
            raise ValueError
        return int(float(t)) if "." in t else int(t), layer
    except ValueError:
        raise bad(GridError, "key", key, "pass a key made by cell(t, layer), such as '25/up.1'") from None


def _batch(batch, x: Tensor) -> int:
    """Images per forward pass: `batch` checked, or the device's feature batch when None."""
    if batch is None:
        return feature_batch(x.device)
    return check_int(batch, "batch", "pass a positive number of images per forward pass (or None)")


@torch.no_grad()
def feature_vectors(model, x: Tensor, ts, layers, *, pool_size: int | None = 2, extras: int = 0, seed: int = 0,
                    batch: int | None = None, bf16: bool = False) -> dict[str, Tensor]:
    """One pooled feature vector per image for every (t, layer): {cell(t, layer): (N, D)} (DDAE's readout).

    pool_size: average-pool each map to pool_size x pool_size (None: global average); extras: leading tokens to
    drop from transformer outputs (U-ViT's time and label tokens); bf16: run the network in bfloat16 autocast
    where the device computes bf16 natively (about twice as fast on a CPU with bf16 instructions; float32
    elsewhere); the features are returned in float32. batch: images per forward pass (None: the device's
    `runtime.feature_batch`)."""
    x = _images(x)
    ts, layers = _grid_axes(ts, layers)
    batch = _batch(batch, x)
    if pool_size is not None:
        check_int(pool_size, "pool_size", "pass a positive side for the pooled maps (2: 2x2), or None for a global "
               "average")
    check_int(extras, "extras", "pass the number of leading non-patch tokens (0 for a U-Net)", low=0)
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
def feature_maps(model, x: Tensor, ts, layers, *, ensemble: int = 1, seed: int = 0, batch: int | None = None,
                 bf16: bool = False) -> dict[tuple, Tensor]:
    """The maps of every (t, layer) at the layers' own resolutions, {(t, layer): (N, C, h, w)}, averaged over
    `ensemble` noise draws (the same draws at every t). Transformer tokens are returned as they come. batch:
    images per forward pass (None: the device's `runtime.feature_batch`)."""
    x = _images(x)
    ts, layers = _grid_axes(ts, layers)
    eps = noise_draws(x, seed, ensemble)
    batch = _batch(batch, x)
    out: dict[tuple, list[Tensor]] = {}
    for t in ts:
        for i in range(0, len(x), batch):
            with bf16_autocast(x.device, bf16):
                f = features.extract(model, x[i:i + batch], int(t), list(layers), noise=eps[:, i:i + batch],
                                     ensemble=ensemble)
            for layer, v in f.items():
                out.setdefault((t, layer), []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def dense_features(model, x: Tensor, t: int, layers, *, size: int, extras: int = 0, seed: int = 0,
                   ensemble: int = 1, batch: int | None = None, bf16: bool = False) -> Tensor:
    """Per-pixel features (N, sum of channels, size, size): the maps of `layers` at timestep t, bilinearly
    upsampled to size x size and concatenated along channels (DDPM-Seg's pixel representation). With ensemble > 1
    the maps are averaged over that many noise draws (DIFT averages 8). batch: images per forward pass (None: the
    device's `runtime.feature_batch`)."""
    x = _images(x)
    layers = _layers(layers)
    size = check_int(size, "size", "pass the output side in pixels, usually the images' (x.shape[-1])")
    batch = _batch(batch, x)
    check_int(extras, "extras", "pass the number of leading non-patch tokens (0 for a U-Net)", low=0)
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
    probe: 'linear' (test accuracy) or 'knn' (k = 20). Returns (best cell, {cell: accuracy}).
    Every cell is checked before any probe runs: a bad cell fails at once, named, not after the others trained."""
    scores = probe_scores(train, train_y, {"test": (test, test_y)}, probe, cfg)["test"]
    return grid_search(scores.__getitem__, list(train))


def probe_scores(train: dict[str, Tensor], train_y: Tensor, evals: Mapping[str, tuple], probe: str = "linear",
                 cfg: probes.ProbeConfig = probes.ProbeConfig()) -> dict[str, dict[str, float]]:
    """The probe of every cell scored on several sets at once, {name: {cell: accuracy}} for evals = {name: (grid,
    labels)}: a validation set that chooses the cell and a test set that reports it, say. Each cell's probe is
    trained once and scored on every set, with the numbers `probe_grid` gives for each set alone."""
    if probe not in ("linear", "knn"):
        raise bad(InputError, "probe", probe, "choose 'linear' or 'knn'", "unknown probe")
    probes.check_config(cfg)
    if not isinstance(evals, Mapping) or not evals or not all(isinstance(v, tuple) and len(v) == 2
                                                              for v in evals.values()):
        raise bad(InputError, "evals", evals, "pass {name: (grid, labels)}, e.g. {'val': (val, val_y), "
                  "'test': (test, test_y)}")
    for name, grid in (("train", train), *((n, g) for n, (g, _) in evals.items())):
        if not isinstance(grid, Mapping):
            raise bad(InputError, name, grid, "pass a grid {cell(t, layer): (N, D) features}, as feature_vectors "
                      "returns (one tensor is the grid {'pixels': x})")
    if not train:
        raise bad(GridError, "train", train, "pass at least one cell: feature_vectors(net, x, ts, layers)",
                  "no cells")
    for name, (test, _) in evals.items():
        only_train, only_test = sorted(set(train) - set(test), key=str), sorted(set(test) - set(train), key=str)
        if only_train or only_test:
            bad_name, cells = (name, only_train) if only_train else ("train", only_test)
            raise bad(GridError, bad_name, sorted(test if only_train else train, key=str), f"give train and {name} "
                      "the same cells: split one feature_vectors grid by rows", f"missing cells {cells}: cells in "
                      f"only one of the train and {name} grids")
    labels = {}
    for k in train:                                     # every cell checked before any probe trains
        for name, (test, test_y) in evals.items():
            train_ids, labels[name] = probes.check_inputs(train[k], train_y, test[k], test_y,
                                                          (f"train[{k!r}]", "train_y", f"{name}[{k!r}]",
                                                           f"{name}_y"))
        if probe == "knn" and len(train[k]) < 20:
            raise bad(InputError, f"train[{k!r}]", train[k], "pass at least 20 training examples (k-NN votes "
                      "with k = 20) or use probe='linear'")
    out = {name: {} for name in evals}
    for k in train:
        sets = [(test[k], labels[name]) for name, (test, _) in evals.items()]
        if probe == "linear":
            accs = probes._linear_probe_scores(train[k], train_ids, sets, cfg)
        else:
            accs = [probes._knn_accuracy(train[k], train_ids, x, y, 20) for x, y in sets]
        for name, acc in zip(evals, accs):
            out[name][k] = acc
    return out


def grid_search(score, cells) -> tuple:
    """Eq. 16 itself: evaluate score(cell) on every cell of the grid (a cell is a (t, block) choice, in any
    spelling) and return (the best cell, {cell: score}). A score must be one number and not NaN (a NaN would
    win or lose by its position in the grid)."""
    if not callable(score):
        raise bad(InputError, "score", score, "pass a function cell -> number, e.g. lambda k: probe(train[k], ...)")
    if isinstance(cells, (str, bytes)) or not hasattr(cells, "__iter__"):
        raise bad(GridError, "cells", cells, "pass a list of cells, e.g. [(t, layer) for t in ts for layer in "
                  "layers] (a single cell still goes in a list)")
    cells = list(cells)
    if not cells:
        raise bad(GridError, "cells", cells, "pass at least one (t, block) cell to search", "an empty grid")
    grid = {}
    for c in cells:
        grid[c] = value = score(c)
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise bad(GridError, f"score({c!r})", value, "return one number per cell (e.g. an accuracy as a "
                      "float)") from None
        if math.isnan(number):
            raise bad(GridError, f"score({c!r})", value, "fix the readout at that cell (empty test set? no "
                      "visible keypoints? NaN features?) or leave the cell out", "NaN: the best cell would depend "
                      "on the order of the cells")
    return max(grid, key=grid.get), grid


def as_table(grid: dict[str, float], ts, layers) -> Tensor:
    """A grid {cell: value} as a (len(ts), len(layers)) tensor for heatmaps (NaN where a cell is missing). Keys
    are spelt by `cell`, "t/layer"; a grid none of whose keys is a cell of the table is refused (it would give a
    table of NaN)."""
    if not isinstance(grid, Mapping) or not grid:
        raise bad(GridError, "grid", grid, "pass a non-empty grid {cell(t, layer): value}, e.g. from probe_grid")
    ts, layers = _grid_axes(ts, layers)
    keys = {cell(t, layer) for t in ts for layer in layers}
    if not keys & set(grid):
        example = next(iter(grid))
        fix = ("convert the keys: {fw.cell(t, l): v for (t, l), v in grid.items()}"
               if isinstance(example, tuple) and len(example) == 2 else
               f"pass the ts and layers the grid was computed on; its keys look like {example!r}, the table's "
               f"like {cell(ts[0], layers[0])!r}")
        raise bad(GridError, "grid", sorted(grid, key=str)[:6], fix, "no key is a cell of the table")
    table = torch.full((len(ts), len(layers)), float("nan"))
    for i, t in enumerate(ts):
        for j, layer in enumerate(layers):
            table[i, j] = grid.get(cell(t, layer), float("nan"))
    return table
