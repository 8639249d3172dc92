"""Every misuse of the data layer gives one clear error naming the file or argument, the value and the fix:
damaged IDX files and inconsistent splits are DataError, bad arguments InputError; the Debian folder is read at
call time, and no cache serves a folder's data after the folder was redirected."""
import gzip
import re
import struct

import numpy as np
import pytest
import torch

from diffrep_lib import data
from diffrep_lib.data import fashion_mnist as fm
from diffrep_lib.data import toy2d, toy_scenes
from diffrep_lib.errors import DataError, InputError

FIX = r"reinstall|re-download|DIFFREP_DATA"        # every file error says how to get an intact copy


def idx(array: np.ndarray, *, magic=(0, 0, 8), ndim=None, shape=None) -> bytes:
    """An IDX blob of `array` (uint8), with the header's magic, number of dimensions or shape overridable."""
    shape = array.shape if shape is None else shape
    ndim = len(shape) if ndim is None else ndim
    return bytes([*magic, ndim]) + b"".join(struct.pack(">I", d) for d in shape) + array.tobytes()


def images(n, value=0):
    return np.full((n, 28, 28), value, np.uint8)


def labels(n):
    return np.arange(n, dtype=np.uint8) % 10


def write_split(folder, split="train", n=5, value=0, *, image_blob=None, label_blob=None, gz=True):
    """The two IDX files of `split` in `folder`, valid unless a blob is given; returns (images, labels) paths."""
    prefix = fm._PREFIX[split]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, blob in (("images-idx3-ubyte", image_blob if image_blob is not None else idx(images(n, value))),
                       ("labels-idx1-ubyte", label_blob if label_blob is not None else idx(labels(n)))):
        path = folder / f"{prefix}-{kind}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(blob) if gz and not isinstance(blob, RawFile) else bytes(blob))
        paths.append(path)
    return tuple(paths)


class RawFile(bytes):
    """Bytes written as they are, even into a .gz file (to fake a damaged gzip stream)."""


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    fm.cache_clear()
    yield
    fm.cache_clear()


# ----------------------------------------------------------------------------------------------- damaged IDX files
GOOD_GZ = gzip.compress(idx(images(5)))
DAMAGED = {  # case: (which file, blob written, pattern the message must match besides the path and the fix)
    "not gzip": ("images", RawFile(idx(images(5))), r"not intact gzip data"),
    "truncated gzip": ("images", RawFile(GOOD_GZ[: len(GOOD_GZ) // 2]), r"truncated gzip stream"),
    "gzip bad crc": ("labels", RawFile(gzip.compress(idx(labels(5)))[:-8] + b"\0" * 8), r"gzip"),
    "empty file": ("images", b"", r"magic bytes nothing .*only 0 bytes"),
    "wrong magic (int32 type)": ("images", idx(images(5), magic=(0, 0, 0x0C)), r"magic bytes 00 00 0c 03"),
    "wrong magic (first bytes)": ("labels", idx(labels(5), magic=(1, 2, 8)), r"magic bytes 01 02 08 01"),
    "truncated header": ("images", bytes([0, 0, 8, 3, 0, 0]), r"6 bytes .*header of 3 dimensions .*truncated"),
    "short payload": ("images", idx(images(5))[:-100], r"3820 bytes .*needs 3920: the file is truncated"),
    "long payload": ("images", idx(images(5)) + b"\0" * 16, r"3936 bytes .*needs 3920: 16 bytes too many"),
    "images flat (N, 784)": ("images", idx(images(5).reshape(5, 784)), r"shape \(5, 784\) .*\(N, 28, 28\)"),
    "images 32x32": ("images", idx(np.zeros((5, 32, 32), np.uint8)), r"shape \(5, 32, 32\) .*\(N, 28, 28\)"),
    "labels 2-D": ("labels", idx(np.zeros((5, 1), np.uint8)), r"shape \(5, 1\) .*labels file holds \(N\)"),
    "no items": ("labels", idx(np.zeros((0,), np.uint8)), r"shape \(0,\) .*holds no items"),
    "label 10": ("labels", idx(np.array([0, 1, 10, 3, 4], np.uint8)), r"label 10 at index 2 .*0\.\.9"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
@pytest.mark.parametrize("where", ["DIFFREP_DATA", "debian"])
def test_damaged_idx_file_is_a_data_error_naming_file_and_fix(case, where, tmp_path, monkeypatch):
    which, blob, pattern = DAMAGED[case]
    folder = tmp_path / where
    paths = write_split(folder, "train", **{f"{which[:-1]}_blob": blob})
    path = paths[0] if which == "images" else paths[1]
    if where == "DIFFREP_DATA":
        monkeypatch.setenv("DIFFREP_DATA", str(folder))
        kwargs, fix = {"debian_dir": tmp_path / "nothing"}, r"point DIFFREP_DATA to a folder"
    else:
        kwargs, fix = {"debian_dir": folder}, r"apt-get install --reinstall dataset-fashion-mnist"
    with pytest.raises(DataError, match=pattern) as err:
        fm.load("train", hub=None, **kwargs)
    msg = str(err.value)
    assert msg.startswith(f"{path}: got ") and re.search(fix, msg), msg
    assert not isinstance(err.value, fm.DataNotFound)         # damaged is not missing: no silent fallback


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_read_idx_never_lets_a_raw_error_escape(case, tmp_path):
    which, blob, pattern = DAMAGED[case]
    (path,) = [p for p in write_split(tmp_path, "test", **{f"{which[:-1]}_blob": blob})
               if which in p.name]
    with pytest.raises(DataError, match=pattern) as err:
        fm._read_idx(path)
    assert str(path) in str(err.value) and re.search(FIX, str(err.value))


def test_uncompressed_file_that_is_gzip_says_to_rename_it(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx(labels(5))))
    with pytest.raises(DataError, match=r"gzip-compressed: name it t10k-labels-idx1-ubyte\.gz"):
        fm._read_idx(path)


def test_unreadable_path_is_a_data_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.mkdir()                                                  # a folder where the file should be
    with pytest.raises(DataError, match=r"cannot be read"):
        fm._read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_count_mismatch_between_images_and_labels_names_both_files(gz, tmp_path):
    paths = write_split(tmp_path / "d", "test", image_blob=idx(images(6)), label_blob=idx(labels(5)), gz=gz)
    with pytest.raises(DataError, match=r"got 6 images and 5 labels") as err:
        fm.load("test", debian_dir=tmp_path / "d", hub=None)
    msg = str(err.value)
    assert str(paths[0]) in msg and str(paths[1]) in msg and "'test' split" in msg and re.search(FIX, msg)


def test_missing_files_are_data_not_found_which_is_a_data_error(tmp_path):
    (tmp_path / "half").mkdir()
    write_split(tmp_path / "half", "train")
    (tmp_path / "half" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(fm.DataNotFound) as err:
        fm.load("train", debian_dir=tmp_path / "half", hub=None)
    assert isinstance(err.value, DataError) and data.DataNotFound is fm.DataNotFound
    assert "no train-labels-idx1-ubyte[.gz] in" in str(err.value) and "apt-get install" in str(err.value)
    with pytest.raises(DataError, match=r"no folder .*nowhere"):
        fm.load("train", debian_dir=tmp_path / "nowhere", hub=None)


def test_valid_files_still_load_identically(tmp_path):
    write_split(tmp_path / "ok", "train", n=7, value=33)
    write_split(tmp_path / "raw", "train", n=7, value=33, gz=False)
    for folder in ("ok", "raw"):
        fm.cache_clear()
        x, y = fm.to_tensors(fm.load("train", debian_dir=tmp_path / folder, hub=None))
        assert x.shape == (7, 1, 28, 28) and torch.equal(x, torch.full_like(x, 33 / 127.5 - 1))
        assert y.tolist() == [i % 10 for i in range(7)]


# ------------------------------------------------------------------------------------- the Debian folder redirect
def test_debian_dir_is_read_at_call_time_and_never_served_stale(tmp_path, monkeypatch):
    write_split(tmp_path / "a", "train", n=5, value=10)
    write_split(tmp_path / "b", "train", n=7, value=250)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "a")
    ds = fm.load("train", hub=None)
    assert len(ds) == 5 and str(tmp_path / "a") in ds.info.description
    assert fm.load("train", hub=None) is ds                       # cached per folder
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "b")
    ds_b = fm.load("train", hub=None)                             # no cache_clear: the new folder's data
    assert len(ds_b) == 7 and str(tmp_path / "b") in ds_b.info.description
    assert fm.to_tensors(ds_b)[0].max() == 250 / 127.5 - 1
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "a")
    assert len(fm.load("train", hub=None)) == 5


def test_tensors_follow_the_redirect_too(tmp_path, monkeypatch):
    write_split(tmp_path / "a", "test", n=5, value=0)
    write_split(tmp_path / "b", "test", n=3, value=255)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "a")
    assert fm.tensors("test")[0].shape == (5, 1, 28, 28)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "b")
    x, y = fm.tensors("test")
    assert x.shape == (3, 1, 28, 28) and x.max() == 1.0 and y.tolist() == [0, 1, 2]


def test_diffrep_data_is_read_at_call_time_too(tmp_path, monkeypatch):
    write_split(tmp_path / "a", "train", n=5)
    write_split(tmp_path / "b", "train", n=6)
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path / "a"))
    assert len(fm.load("train", debian_dir=tmp_path / "none", hub=None)) == 5
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path / "b"))
    assert len(fm.load("train", debian_dir=tmp_path / "none", hub=None)) == 6


def test_path_and_str_folders_share_one_cache_entry(tmp_path):
    write_split(tmp_path / "a", "train", n=5)
    assert fm.load("train", debian_dir=tmp_path / "a", hub=None) is fm.load("train", debian_dir=str(tmp_path / "a"),
                                                                           hub=None)


# ------------------------------------------------------------------------------------------------- bad arguments
NAMES = r"\['fashion_mnist', 'toy_scenes', 'toy2d/8gaussians', 'toy2d/moons', 'toy2d/rings'\]"
BAD_ARGUMENTS = {  # id: (call, pattern naming the argument, the value and the valid choices or fix)
    # fashion_mnist
    "fm.load split": (lambda: fm.load("validation"), r"^split: got 'validation' \(unknown split\); .*\['test', 'train'\]"),
    "fm.load split None": (lambda: fm.load(None), r"^split: got None \(unknown split\)"),
    "fm.load split list": (lambda: fm.load(["train"]), r"^split: got \['train'\] \(unknown split\)"),
    "fm.load data_dir int": (lambda: fm.load("train", data_dir=3), r"^data_dir: got 3; pass a folder"),
    "fm.load debian_dir list": (lambda: fm.load("train", debian_dir=["/x"]), r"^debian_dir: got \['/x'\]; pass a folder"),
    "fm.load hub int": (lambda: fm.load("train", debian_dir="/nonexistent", hub=7), r"^hub: got 7; pass a Hub repository id"),
    "fm.load revision": (lambda: fm.load("train", debian_dir="/x", revision=[1]), r"^revision: got \[1\]; pass a Hub revision"),
    "fm.tensors split": (lambda: fm.tensors("val"), r"^split: got 'val' \(unknown split\); .*\['test', 'train'\]"),
    "fm.to_tensors ds": (lambda: fm.to_tensors(torch.zeros(3)), r"^ds: got .*need a datasets.Dataset with columns"),
    # toy2d
    "toy2d.mixture name": (lambda: toy2d.mixture("spirals"), r"^name: got 'spirals' \(unknown toy distribution\); "
                           r"choose one of \['8gaussians', 'moons', 'rings'\]"),
    "toy2d.mixture name None": (lambda: toy2d.mixture(None), r"^name: got None \(unknown toy distribution\)"),
    "toy2d.sample name": (lambda: toy2d.sample("spiral", 10), r"^name: got 'spiral' \(unknown toy"),
    "toy2d.sample n=0": (lambda: toy2d.sample("moons", 0), r"^n: got 0 \(need an integer >= 1\); pass the number"),
    "toy2d.sample n<0": (lambda: toy2d.sample("moons", -4), r"^n: got -4 \(need an integer >= 1\)"),
    "toy2d.sample n float": (lambda: toy2d.sample("moons", 10.0), r"^n: got 10.0 \(need an integer >= 1\)"),
    "toy2d.sample n bool": (lambda: toy2d.sample("moons", True), r"^n: got True \(need an integer >= 1\)"),
    "toy2d.sample generator": (lambda: toy2d.sample("moons", 5, generator=0), r"^generator: got 0; pass a torch.Generator"),
    "toy2d.load name": (lambda: toy2d.load("circles", 10), r"^name: got 'circles' \(unknown toy"),
    "toy2d.load n": (lambda: toy2d.load("rings", 0), r"^n: got 0 \(need an integer >= 1\)"),
    "toy2d.load seed": (lambda: toy2d.load("rings", 5, seed=1.5), r"^seed: got 1.5 \(need an integer\); pass an integer"),
    # toy_scenes
    "toy_scenes.split name": (lambda: toy_scenes.split("validation"), r"^name: got 'validation' \(unknown split\); "
                              r"choose one of \['test', 'train'\]"),
    "toy_scenes.split list": (lambda: toy_scenes.split(["train"]), r"^name: got \['train'\] \(unknown split\)"),
    "toy_scenes.generate n=0": (lambda: toy_scenes.generate(0), r"^n: got 0 \(need an integer >= 1\); pass the number of scenes"),
    "toy_scenes.generate n float": (lambda: toy_scenes.generate(2.5), r"^n: got 2.5 \(need an integer >= 1\)"),
    "toy_scenes.generate seed": (lambda: toy_scenes.generate(2, seed="a"), r"^seed: got 'a' \(need an integer\)"),
    "toy_scenes.generate size": (lambda: toy_scenes.generate(2, size=4), r"^size: got 4 \(need an integer >= 8\)"),
    "toy_scenes.generate max_shapes": (lambda: toy_scenes.generate(2, max_shapes=0), r"^max_shapes: got 0 \(need an integer >= 1\)"),
    "toy_scenes.generate noise<0": (lambda: toy_scenes.generate(2, noise=-0.1), r"^noise: got -0.1 \(need a finite number >= 0\)"),
    "toy_scenes.generate noise nan": (lambda: toy_scenes.generate(2, noise=float("nan")), r"^noise: got nan \(need a finite"),
    "toy_scenes.load n": (lambda: toy_scenes.load(-1), r"^n: got -1 \(need an integer >= 1\)"),
    "toy_scenes.load size": (lambda: toy_scenes.load(2, size=7), r"^size: got 7 \(need an integer >= 8\)"),
    "toy_scenes.pairs scenes": (lambda: toy_scenes.pairs(torch.zeros(3, 3, 32, 32), 5), r"^scenes: got a Tensor of shape .*pass a Scenes"),
    "toy_scenes.pairs n=0": (lambda: toy_scenes.pairs(toy_scenes.generate(4), 0), r"^n: got 0 \(need an integer >= 1\); pass the number of pairs"),
    "toy_scenes.pairs seed": (lambda: toy_scenes.pairs(toy_scenes.generate(4), 2, seed=None), r"^seed: got None \(need an integer\)"),
    # data-set names
    "data.training_set name": (lambda: data.training_set("mnist"), rf"^name: got 'mnist' \(unknown data set\); choose one of {NAMES}"),
    "data.training_set toy": (lambda: data.training_set("toy2d/spirals"), rf"^name: got 'toy2d/spirals' \(unknown data set\); choose one of {NAMES}"),
    "data.training_set bare toy2d": (lambda: data.training_set("toy2d"), r"^name: got 'toy2d' \(unknown data set\)"),
    "data.training_set None": (lambda: data.training_set(None), r"^name: got None \(unknown data set\)"),
    "data.held_out name": (lambda: data.held_out("cifar10"), rf"^name: got 'cifar10' \(unknown data set\); choose one of {NAMES}"),
    "data.held_out toy": (lambda: data.held_out("toy2d/spirals"), r"^name: got 'toy2d/spirals' \(unknown data set\)"),
    "data.training_tensors name": (lambda: data.training_tensors("imagenet"), rf"^name: got 'imagenet' \(unknown data set\); choose one of {NAMES}"),
    "data.training_tensors toy": (lambda: data.training_tensors("toy2d/moons"), r"^name: got 'toy2d/moons' \(a 2-D toy has no stored "
                                  r"training tensors.*\); call training_set\('toy2d/moons'\)"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_argument_is_one_input_error_naming_argument_value_and_choices(case):
    call, pattern = BAD_ARGUMENTS[case]
    with pytest.raises(InputError, match=pattern) as err:
        call()
    assert isinstance(err.value, ValueError)                    # code catching ValueError keeps working
    assert err.value.__cause__ is None and err.value.__context__ is None     # raised before any work


def test_valid_arguments_keep_their_outputs():
    """The checks accept what worked before (numpy integers included) and change no drawn value."""
    a = toy2d.sample("moons", 64, generator=torch.Generator().manual_seed(1))
    b = toy2d.sample("moons", np.int64(64), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (64, 2) and a.dtype == torch.float32
    assert toy2d.load("rings", np.int64(8), seed=np.int64(3))["x"] == toy2d.load("rings", 8, seed=3)["x"]
    s = toy_scenes.generate(np.int64(6), seed=np.int64(2), noise=0)
    assert torch.equal(s.images, toy_scenes.generate(6, seed=2, noise=0.0).images)
    _, _, draw = data.training_set("toy2d/8gaussians")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(draw(16, g1), toy2d.sample("8gaussians", 16, generator=g2))
    x, y = data.held_out("toy2d/rings")
    assert y is None and torch.equal(x, toy2d.sample("rings", 4096, generator=torch.Generator().manual_seed(99)))
