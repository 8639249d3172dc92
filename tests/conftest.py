import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DIFFREP_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
