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
