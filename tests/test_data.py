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
    fm.cache_clear()
    yield
    fm.cache_clear()


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


def test_tensors_from_local_files_equal_those_read_through_a_dataset(tmp_path, monkeypatch):
    """tensors() reads local IDX files straight into tensors (no datasets.Dataset): the same values and dtypes."""
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "mine", "train", 7, 0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = tmp_path / "mine" / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([7, 28, 28], ">i4").tobytes() + images.tobytes())
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path / "mine"))
    x, y = fm.tensors("train")
    x_ds, y_ds = fm.to_tensors(fm.load("train", hub=None))
    assert torch.equal(x, x_ds) and torch.equal(y, y_ds) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x[:, 0], torch.from_numpy(images).float() / 127.5 - 1)


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


def test_toy_scenes_are_seeded_and_their_labels_are_consistent():
    from diffrep_lib.data import toy_scenes
    a, b = toy_scenes.generate(64, seed=3), toy_scenes.generate(64, seed=3)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, toy_scenes.generate(64, seed=4).images)
    assert a.images.shape == (64, 3, 32, 32) and a.images.min() >= -1 and a.images.max() <= 1
    # the mask says "background" exactly where the depth map does, and classes come from present shapes
    assert torch.equal(a.masks == 0, a.depth == 0)
    for i in range(64):
        present = a.shape_class[i][a.shape_class[i] >= 0]
        assert set((a.masks[i].unique() - 1).tolist()) - {-1} <= set(present.tolist())
        for layer in a.depth[i].unique().tolist():
            if layer:                             # the visible surface of shape `layer` has that shape's class
                assert (a.masks[i][a.depth[i] == layer] == a.shape_class[i, layer - 1] + 1).all()
    # a visible keypoint lies on (or at the outline of) its own shape
    n, s, k = torch.nonzero(a.kp_visible, as_tuple=True)
    xy = a.keypoints[n, s, k]
    assert (xy >= 0).all() and (xy <= 32).all() and a.kp_visible.float().mean() > 0.4
    assert (a.shape_class >= 0).sum(1).min() >= 1


def test_toy_scene_keypoints_correspond_across_instances():
    """Keypoint j of a square is always its same corner, relative to the shape's centre."""
    from diffrep_lib.data import toy_scenes
    sc = toy_scenes.generate(200, seed=0)
    squares = sc.shape_class == toy_scenes.CLASSES.index("square") - 1
    kp = sc.keypoints[squares]                                  # (M, 4, 2)
    rel = kp - kp.mean(1, keepdim=True)
    assert ((rel[:, 0, 0] < 0) & (rel[:, 0, 1] < 0)).all() and ((rel[:, 2, 0] > 0) & (rel[:, 2, 1] > 0)).all()


def test_unknown_toy_scene_split_and_bad_sizes_are_clear_errors():
    from diffrep_lib.data import toy_scenes
    with pytest.raises(ValueError, match="unknown split"):
        toy_scenes.split("validation")
    with pytest.raises(ValueError, match=r"n: got 0 \(need an integer >= 1\)"):
        toy_scenes.generate(0)


def test_correspondence_pairs_share_one_unique_class_with_visible_keypoints():
    from diffrep_lib.data import toy_scenes
    sc = toy_scenes.generate(120, seed=5)
    pairs = toy_scenes.pairs(sc, 50, seed=1)
    assert pairs.shape == (50, 4) and torch.equal(pairs, toy_scenes.pairs(sc, 50, seed=1))
    assert len({(min(i, j), max(i, j)) for i, _, j, _ in pairs.tolist()}) == 50
    for i, si, j, sj in pairs.tolist():
        c = sc.shape_class[i, si]
        assert i != j and c >= 0 and sc.shape_class[j, sj] == c
        assert (sc.shape_class[i] == c).sum() == 1 and (sc.shape_class[j] == c).sum() == 1
        assert (sc.kp_visible[i, si] & sc.kp_visible[j, sj]).any()
    sub = sc[torch.tensor([3, 7])]
    assert len(sub) == 2 and torch.equal(sub.masks[1], sc.masks[7]) and torch.equal(sub.keypoints[0], sc.keypoints[3])
