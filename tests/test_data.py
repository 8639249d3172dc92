"""Fashion-MNIST resolution order (DIFFREP_DATA, Debian, Hub), its error message, and the toys."""
import gzip
import struct

import numpy as np
import pytest
import torch

from diffrep_lib.data import fashion_mnist as fm
from diffrep_lib.data import toy2d


def write_idx(folder, split, n, value, gz=True):
    prefix = fm._PREFIX[split]
    images = np.full((n, 28, 28), value, np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    blobs = {f"{prefix}-images-idx3-ubyte": struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + images.tobytes(),
             f"{prefix}-labels-idx1-ubyte": struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels.tobytes()}
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)


@pytest.fixture(autouse=True)
def _fresh():
    fm.load.cache_clear()
    yield
    fm.load.cache_clear()


def test_diffrep_data_comes_first(tmp_path, monkeypatch):
    write_idx(tmp_path / "mine", "test", 12, 7, gz=False)
    write_idx(tmp_path / "debian", "test", 5, 200)
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path / "mine"))
    ds = fm.load("test", debian_dir=tmp_path / "debian", hub=None)
    assert len(ds) == 12 and "DIFFREP_DATA" in ds.info.description
    x, y = fm.to_tensors(ds)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 7 / 127.5 - 1)) and y.tolist() == [i % 10 for i in range(12)]


def test_debian_package_is_second(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    write_idx(tmp_path / "debian", "train", 5, 255)
    ds = fm.load("train", debian_dir=tmp_path / "debian", hub=None)
    assert len(ds) == 5 and fm.to_tensors(ds)[0].max() == 1.0


def test_hub_path_reads_parquet_written_here(tmp_path, monkeypatch):
    """The Hub branch goes through datasets.load_dataset; here it reads parquet files this test writes
    in the Hub repository's layout (an `image` column of PNG bytes and a `label` column)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    repo = tmp_path / "hub_repo"
    (repo / "fashion_mnist").mkdir(parents=True)
    pngs = []
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(np.full((28, 28), 10 * i, np.uint8)).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    table = pa.table({"image": pngs, "label": list(range(6))})
    pq.write_table(table, repo / "fashion_mnist" / "test-00000-of-00001.parquet")
    ds = fm.load("test", debian_dir=tmp_path / "nothing", hub=str(repo), revision="main")
    x, y = fm.to_tensors(ds)
    assert len(ds) == 6 and y.tolist() == list(range(6))
    assert torch.allclose(x[3], torch.full((1, 28, 28), 30 / 127.5 - 1))
    assert "Hub" in ds.info.description


def test_nothing_reachable_gives_one_error_naming_three_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    with pytest.raises(fm.DataNotFound) as err:
        fm.load("train", debian_dir=tmp_path / "none", hub=str(tmp_path / "no_such_repo"))
    msg = str(err.value)
    assert "DIFFREP_DATA" in msg and "apt-get install dataset-fashion-mnist" in msg and "load_dataset" in msg


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown split"):
        fm.load("validation")


@pytest.mark.skipif(not (fm.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").exists(), reason="Debian package absent")
def test_real_fashion_mnist_from_debian():
    x, y = fm.tensors("test")
    assert x.shape == (10000, 1, 28, 28) and -1 <= x.min() < x.max() <= 1
    assert torch.bincount(y).tolist() == [1000] * 10


@pytest.mark.parametrize("name", sorted(toy2d.TOYS))
def test_toys_are_normalised_mixtures_with_seeded_samples(name):
    means, covs, w = toy2d.mixture(name)
    assert means.shape[1] == 2 and covs.shape == (len(means), 2, 2) and torch.isclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))
    a = toy2d.sample(name, 100, generator=torch.Generator().manual_seed(1))
    b = toy2d.sample(name, 100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (100, 2)
    assert len(toy2d.load(name, 10)) == 10


def test_unknown_toy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown toy"):
        toy2d.mixture("spirals")
