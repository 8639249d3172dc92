import dataclasses
import json
import os

import pytest
import torch

from diffrep_lib import recipes, zoo
from diffrep_lib.models import MLPConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DIFFREP_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# a recipe that trains in a second: the zoo's tests (and the command line's) register it under "tiny_toy"
TINY = recipes.Recipe(name="tiny_toy", model=MLPConfig(hidden=16, depth=2), task="denoise",
                      data="toy2d/8gaussians", steps=30, batch_size=64, lr=1e-2, warmup=0, p_uncond=0.0)


@pytest.fixture
def tiny(monkeypatch):
    """TINY registered as zoo recipe 'tiny_toy' (quick: 30 steps, full: 40)."""
    monkeypatch.setitem(recipes.RECIPES, "tiny_toy", {"quick": TINY, "full": dataclasses.replace(TINY, steps=40)})
    return TINY


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    """An empty folder in place of the package's shipped weights and manifest."""
    monkeypatch.setattr(zoo.store, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(zoo.store, "MANIFEST", tmp_path / "weights" / "manifest.json")
    return tmp_path / "weights"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty DIFFREP_CACHE for the test."""
    monkeypatch.setenv("DIFFREP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class _FullDisk:
    """A file opened for writing on a disk that fills up: a few bytes get written, then ENOSPC."""

    def __init__(self, path, mode="r", *args, **kwargs):
        import builtins
        self.f = builtins.open(path, mode, *args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        import errno
        self.f.write(data[:7])
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write of the library (support.runtime.atomic_write) hits a full disk while the fixture is on."""
    from diffrep_lib.support import runtime
    monkeypatch.setattr(runtime, "open", _FullDisk, raising=False)


def _write_notebook(path, code: str):
    """A notebook at `path`: a `parameters` cell (profile, seed) and one code cell `code`."""
    cell = lambda src, tags=(): {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(tags)},
                                 "outputs": [], "source": src}
    nb = {"cells": [cell('profile = "auto"\nseed = 0', ["parameters"]), cell(code)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def write_notebook():
    """write_notebook(path, code): a chapter-like notebook with a parameters cell, for the runners' tests."""
    return _write_notebook
