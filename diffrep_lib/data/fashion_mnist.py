"""Fashion-MNIST (Xiao et al. 2017) as a `datasets.Dataset`, from wherever it can be found offline first.

Resolution order (docs/ARCHITECTURE.md, "Data"):

  1. the folder named by the environment variable DIFFREP_DATA, holding the four IDX files
     (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`);
  2. the Debian/Ubuntu package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/);
  3. the Hugging Face Hub through `datasets.load_dataset` at a pinned revision (Colab).

Rows hold `image` (28x28 uint8) and `label` (0..9); `to_tensors` gives x in [-1, 1], (N, 1, 28, 28).
"""
from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HUB_ID = "zalando-datasets/fashion_mnist"
HUB_REVISION = os.environ.get("DIFFREP_HUB_REVISION", "refs/convert/parquet")   # parquet export of the Hub repo
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_PREFIX = {"train": "train", "test": "t10k"}


class DataNotFound(RuntimeError):
    """Raised when Fashion-MNIST is in none of the three places the book looks."""


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(folder: Path, split: str) -> tuple[Path, Path] | None:
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        stem = folder / f"{_PREFIX[split]}-{kind}"
        path = next((p for p in (stem.with_name(stem.name + ".gz"), stem) if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def _from_arrays(images: np.ndarray, labels: np.ndarray, source: str):
    import datasets

    features = datasets.Features({"image": datasets.Array2D((28, 28), "uint8"),
                                  "label": datasets.ClassLabel(names=list(CLASSES))})
    ds = datasets.Dataset.from_dict({"image": images, "label": labels.astype(np.int64)}, features=features)
    ds.info.description = f"Fashion-MNIST from {source}"
    return ds


def _from_hub(split: str, repo: str, revision: str):
    import datasets

    hub = datasets.load_dataset(repo, revision=revision, split=split)
    if not isinstance(hub.features["image"], datasets.Image):     # parquet without HF feature metadata
        hub = hub.cast_column("image", datasets.Image())
    images = np.stack([np.asarray(im, dtype=np.uint8) for im in hub["image"]])
    return _from_arrays(images, np.asarray(hub["label"]), f"the Hub ({repo}@{revision})")


@functools.lru_cache(maxsize=4)
def load(split: str = "train", *, data_dir: str | None = None, debian_dir: str | Path = DEBIAN_DIR,
         hub: str | None = HUB_ID, revision: str = HUB_REVISION):
    """Fashion-MNIST `split` ('train' or 'test') as a `datasets.Dataset` with columns image, label."""
    if split not in _PREFIX:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    data_dir = data_dir or os.environ.get("DIFFREP_DATA")
    tried = []
    for folder, what in ((data_dir, "DIFFREP_DATA"), (debian_dir, "the Debian package")):
        if not folder:
            tried.append(f"{what}: not set")
            continue
        paths = _find_idx(Path(folder), split)
        if paths:
            return _from_arrays(_read_idx(paths[0]), _read_idx(paths[1]), f"{what} ({folder})")
        tried.append(f"{what}: no IDX files in {folder}")
    if hub:
        try:
            return _from_hub(split, hub, revision)
        except Exception as err:  # offline, unknown repo, no `datasets` cache: all mean "not reachable"
            tried.append(f"the Hub ({hub}@{revision}): {type(err).__name__}: {str(err).splitlines()[0][:160]}")
    raise DataNotFound(
        f"Fashion-MNIST ({split}) was not found. Looked in: " + "; ".join(tried) + ".\n"
        "Fix it one of three ways: (1) put the IDX files (train-images-idx3-ubyte.gz, ...) in a folder "
        "and set DIFFREP_DATA to it; (2) on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`; "
        f"(3) go online so that `datasets.load_dataset('{HUB_ID}')` can reach the Hugging Face Hub.")


@functools.lru_cache(maxsize=4)
def tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): images scaled to [-1, 1] as float32 (N, 1, 28, 28) and labels as int64 (N,)."""
    return to_tensors(load(split))


def to_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """A Fashion-MNIST `datasets.Dataset` as (x in [-1, 1], (N, 1, 28, 28); labels (N,))."""
    rows = ds.with_format("numpy")[:]            # one columnar read; row-wise access is 20x slower
    x = torch.from_numpy(np.asarray(rows["image"], dtype=np.uint8)).float().div(127.5).sub(1).unsqueeze(1)
    return x, torch.from_numpy(np.asarray(rows["label"], dtype=np.int64))
