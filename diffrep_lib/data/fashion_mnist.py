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
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, InputError, bad

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")   # read at call time: reassign it to redirect `load`
HUB_ID = "zalando-datasets/fashion_mnist"
HUB_REVISION = os.environ.get("DIFFREP_HUB_REVISION", "refs/convert/parquet")   # parquet export of the Hub repo
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_PREFIX = {"train": "train", "test": "t10k"}
_KINDS = {"images": ("images-idx3-ubyte", (28, 28)), "labels": ("labels-idx1-ubyte", ())}   # file stem, item shape
_FIX = {
    "DIFFREP_DATA": "replace it with an intact copy (re-download the four IDX files from "
                    "https://github.com/zalandoresearch/fashion-mnist) or point DIFFREP_DATA to a folder "
                    "holding the four intact files",
    "the Debian package": "reinstall the package (`sudo apt-get install --reinstall dataset-fashion-mnist`) or "
                          "point DIFFREP_DATA to a folder holding the four intact IDX files",
}
_FIX_ANY = ("re-download it (https://github.com/zalandoresearch/fashion-mnist), reinstall `dataset-fashion-mnist` "
            "if it came from the Debian package, or point DIFFREP_DATA to a folder holding the four intact IDX files")


class DataNotFound(DataError):
    """Raised when Fashion-MNIST is in none of the three places the book looks."""


def _corrupt(path: Path, got: str, why: str, fix: str) -> DataError:
    """The DataError for a damaged file, in the library's message shape: '<file>: got <what> (<why>); <fix>'."""
    return DataError(f"{path}: got {got} ({why}); {fix}")


def _shape_text(shape) -> str:
    return "(" + ", ".join(["N", *map(str, shape)]) + ")"


def _read_idx(path: Path, kind: str | None = None, fix: str = _FIX_ANY) -> np.ndarray:
    """The array in the IDX file `path`, checked end to end: a readable gzip stream (for .gz), the magic of an
    unsigned-byte IDX file, the item shape of `kind` ('images': (N, 28, 28); 'labels': (N,), values 0..9; by
    default read from the file name) and a payload of exactly the size the header promises. Anything else is a
    DataError naming the file and `fix`."""
    path = Path(path)
    if kind is None:
        kind = next((k for k, (stem, _) in _KINDS.items() if stem in path.name), None)
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except EOFError as err:
        raise _corrupt(path, "a truncated gzip stream", f"{type(err).__name__}: {err}", fix) from err
    except gzip.BadGzipFile as err:
        raise _corrupt(path, "a file that is not intact gzip data", f"{type(err).__name__}: {err}", fix) from err
    except zlib.error as err:
        raise _corrupt(path, "a corrupt gzip stream", f"zlib.error: {err}", fix) from err
    except OSError as err:
        raise _corrupt(path, "a file that cannot be read", f"{type(err).__name__}: {err}", fix) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        head = " ".join(f"{b:02x}" for b in raw[:4]) or "nothing"
        why = "an IDX file of unsigned bytes starts 00 00 08 <number of dimensions>"
        if raw[:2] == b"\x1f\x8b":
            why += f"; this file is gzip-compressed: name it {path.name}.gz"
        elif len(raw) < 4:
            why += f"; the file holds only {len(raw)} bytes"
        raise _corrupt(path, f"magic bytes {head}", why, fix)
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise _corrupt(path, f"{len(raw)} bytes", f"the header of {ndim} dimensions alone needs {4 + 4 * ndim}: "
                       "the file is truncated", fix)
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if kind in _KINDS:
        item = _KINDS[kind][1]
        if ndim != 1 + len(item) or shape[1:] != item:
            raise _corrupt(path, f"a header of shape {shape}",
                           f"a Fashion-MNIST {kind} file holds {_shape_text(item)}", fix)
    if ndim == 0 or shape[0] == 0:
        raise _corrupt(path, f"a header of shape {shape}", "the file holds no items", fix)
    need, have = int(np.prod(shape)), len(raw) - 4 - 4 * ndim
    if have != need:
        why = (f"the header's shape {shape} needs {need}: the file is truncated" if have < need else
               f"the header's shape {shape} needs {need}: {have - need} bytes too many")
        raise _corrupt(path, f"{have} bytes of data after the header", why, fix)
    array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    if kind == "labels" and array.max() >= len(CLASSES):
        at = int(np.argmax(array >= len(CLASSES)))
        raise _corrupt(path, f"label {int(array[at])} at index {at}",
                       f"labels must be 0..{len(CLASSES) - 1}", fix)
    return array


def _find_idx(folder: Path, split: str) -> tuple[Path, Path] | str:
    """The (images, labels) files of `split` in `folder`, or why they are not there."""
    if not folder.is_dir():
        return f"no folder {folder}"
    found = []
    for stem_kind, _ in _KINDS.values():
        stem = folder / f"{_PREFIX[split]}-{stem_kind}"
        path = next((p for p in (stem.with_name(stem.name + ".gz"), stem) if p.is_file()), None)
        if path is None:
            return f"no {stem.name}[.gz] in {folder}"
        found.append(path)
    return found[0], found[1]


def _read_split(paths: tuple[Path, Path], split: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _read_idx(paths[0], "images", fix), _read_idx(paths[1], "labels", fix)
    if len(images) != len(labels):
        raise DataError(f"{paths[0]} and {paths[1]}: got {len(images)} images and {len(labels)} labels (the two "
                        f"files of the {split!r} split must hold one label per image); {fix}")
    return images, labels


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


def _resolve(split, data_dir, debian_dir) -> tuple[str | None, str | None]:
    """Check the arguments of `load`/`tensors` and resolve the folders now (not at import, not in the cache):
    data_dir from DIFFREP_DATA, debian_dir from the module's DEBIAN_DIR, both as normalised strings."""
    if not isinstance(split, str) or split not in _PREFIX:
        raise bad(InputError, "split", split, f"choose one of {sorted(_PREFIX)}", why="unknown split")
    for name, value in (("data_dir", data_dir), ("debian_dir", debian_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise bad(InputError, name, value, "pass a folder as a str or pathlib.Path, or None for the default")
    data_dir = data_dir or os.environ.get("DIFFREP_DATA") or None
    debian_dir = DEBIAN_DIR if debian_dir is None else debian_dir
    return (str(Path(data_dir)) if data_dir else None), (str(Path(debian_dir)) if debian_dir else None)


def load(split: str = "train", *, data_dir: str | Path | None = None, debian_dir: str | Path | None = None,
         hub: str | None = HUB_ID, revision: str = HUB_REVISION):
    """Fashion-MNIST `split` ('train' or 'test') as a `datasets.Dataset` with columns image, label.

    data_dir defaults to $DIFFREP_DATA and debian_dir to the module's DEBIAN_DIR, both read at each call; the
    result is cached per resolved folder, so redirecting either gives the new folder's data."""
    data_dir, debian_dir = _resolve(split, data_dir, debian_dir)
    if hub is not None and not isinstance(hub, (str, os.PathLike)):
        raise bad(InputError, "hub", hub, f"pass a Hub repository id such as {HUB_ID!r}, or None to stay offline")
    if not isinstance(revision, str):
        raise bad(InputError, "revision", revision, f"pass a Hub revision as a str, such as {HUB_REVISION!r}")
    return _load(split, data_dir, debian_dir, None if hub is None else str(hub), revision)


def _local(split: str, data_dir: str | None, debian_dir: str | None):
    """((images, labels), source) from the first local folder (DIFFREP_DATA, then the Debian package) that holds
    the split's IDX files, or (None, what was tried)."""
    tried = []
    for folder, what in ((data_dir, "DIFFREP_DATA"), (debian_dir, "the Debian package")):
        if not folder:
            tried.append(f"{what}: not set")
            continue
        paths = _find_idx(Path(folder), split)
        if isinstance(paths, str):
            tried.append(f"{what}: {paths}")
            continue
        return _read_split(paths, split, _FIX[what]), f"{what} ({folder})"
    return None, tried


@functools.lru_cache(maxsize=4)
def _load(split: str, data_dir: str | None, debian_dir: str | None, hub: str | None, revision: str):
    arrays, found = _local(split, data_dir, debian_dir)
    if arrays is not None:
        return _from_arrays(*arrays, found)
    tried = found
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


def tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): images scaled to [-1, 1] as float32 (N, 1, 28, 28) and labels as int64 (N,); cached, like `load`,
    per resolved folder."""
    return _tensors(split, *_resolve(split, None, None))


@functools.lru_cache(maxsize=4)
def _tensors(split: str, data_dir: str | None, debian_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    arrays, _ = _local(split, data_dir, debian_dir)      # local files straight to tensors: 0.4 s for the training
    if arrays is not None:                              # split, against 4 s through a datasets.Dataset
        return _as_tensors(*arrays)
    return to_tensors(_load(split, data_dir, debian_dir, HUB_ID, HUB_REVISION))


def cache_clear() -> None:
    """Forget every loaded split (both `load`'s and `tensors`' caches)."""
    _load.cache_clear()
    _tensors.cache_clear()



def to_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """A Fashion-MNIST `datasets.Dataset` as (x in [-1, 1], (N, 1, 28, 28); labels (N,))."""
    columns = getattr(ds, "column_names", None)
    if not isinstance(columns, list) or not {"image", "label"} <= set(columns):
        raise bad(InputError, "ds", columns if isinstance(columns, list) else ds,
                  "pass the datasets.Dataset that fashion_mnist.load(split) returns",
                  why="need a datasets.Dataset with columns 'image' and 'label'")
    rows = ds.with_format("numpy")[:]            # one columnar read; row-wise access is 20x slower
    return _as_tensors(rows["image"], rows["label"])


def _as_tensors(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div(127.5).sub(1).unsqueeze(1)
    return x, torch.from_numpy(np.array(labels, dtype=np.int64))
