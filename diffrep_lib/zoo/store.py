"""The zoo's files: shipped weights and their manifest in the package, trained models in the cache.

`quick`, seed 0: weights shipped in `diffrep_lib/weights/` (float16 safetensors) with a `manifest.json` entry
(recipe hash, config, seed, steps, wall time, device, date, final metrics, sha256, golden output). Anything else
(`full`, other seeds, or DIFFREP_RETRAIN=1) lives in DIFFREP_CACHE/zoo, keyed by the recipe hash. Every file is
written to a temporary name and renamed, so a crash never leaves a half-written one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from safetensors.torch import save

from ..errors import ZooError
from ..support.runtime import atomic_write, cache_dir
from .recipes import EXTRAS, Recipe, recipe_hash

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors written atomically (support.runtime.atomic_write): a crash or a full disk keeps the old file."""
    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def atomic_write_text(path: Path, text: str) -> None:
    """Text written atomically (a failed write keeps the old file)."""
    atomic_write(path, text.encode())


def checkpoint_path(r: Recipe) -> Path:
    """Where a recipe's freshly trained weights wait, before they are evaluated and stored."""
    return cache_dir() / "zoo" / "trained" / f"{r.name}-s{r.seed}-{recipe_hash(r)[:16]}.safetensors"


def cached_path(r: Recipe, profile: str) -> Path:
    """A trained model in the cache (its record beside it, .json)."""
    return cache_dir() / "zoo" / f"{r.name}-{profile}-s{r.seed}-{recipe_hash(r)[:16]}.safetensors"


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def read_manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"format": 1, "entries": {}}


def write_entry(name: str, rec: dict) -> None:
    """Store one manifest entry (make zoo's workers ship in parallel: one read-modify-write at a time)."""
    with _manifest_lock():
        manifest = read_manifest()
        manifest["entries"][name] = rec
        atomic_write_text(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def retrain_command(name: str) -> str:
    """What (re)trains the shipped recipe `name`, for pip users and in a clone: `diffrep zoo train NAME --ship`, or
    `make zoo` in a clone (`make zoo-extras` for an extra)."""
    return f"diffrep zoo train {name} --ship (in a clone: {'make zoo-extras' if name in EXTRAS else 'make zoo'})"


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes on `path` (POSIX flock; elsewhere nothing is locked). The zoo holds one
    per cached model while it checks, trains and stores it, so two processes asking for the same model train it
    once: the second waits and then loads what the first stored."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _manifest_lock():
    """An exclusive lock on the manifest between processes (make zoo's workers ship in parallel)."""
    with file_lock(MANIFEST.parent / ".manifest.lock"):
        yield
