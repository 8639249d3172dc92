"""Misuse of the readout probes, the (t, block) grid framework and the sample metrics: one clear error each.

Every case asserts the error family and that the message names the argument and says what to do
("<argument>: got <value> (<why>); <fix>"). All checks run before any network, probe or classifier is evaluated,
so the whole file takes a few seconds on tiny tensors."""
import re

import numpy as np
import pytest
import torch

from diffrep_lib import framework as fw, metrics, probes
from diffrep_lib.errors import GridError, InputError
from diffrep_lib.models import Classifier

g = torch.Generator().manual_seed(0)
X, Y = torch.randn(24, 5, generator=g), torch.arange(24) % 3
XT, YT = torch.randn(12, 5, generator=g), torch.arange(12) % 3
CFG = probes.ProbeConfig(steps=2)
nan_at = lambda t, i=0: t.clone().index_fill_(0, torch.tensor([i]), float("nan"))


def raises(kind, argument: str, fix: str):
    """pytest.raises for '<argument>: got ...; ... <fix> ...' (fix: a fragment of the advice, matched literally)."""
    return pytest.raises(kind, match=rf"(?s)^{re.escape(argument)}: got .*; .*{re.escape(fix)}")


# ------------------------------------------------------------------------------------------------ probes

def _linear(x, y, xt, yt):
    return probes.linear_probe(x, y, xt, yt, CFG)


def _knn(x, y, xt, yt):
    return probes.knn_accuracy(x, y, xt, yt, k=3)


def _few(x, y, xt, yt):
    return probes.few_label_probe(x, y, xt, yt, per_class=2, draws=2, cfg=CFG)


PROBES = {"linear_probe": _linear, "knn_accuracy": _knn, "few_label_probe": _few}

# (case, (train_x, train_y, test_x, test_y), argument named, a fragment of the fix)
SHARED = [
    ("train labels shorter", (X, Y[:20], XT, YT), "train_y", "one label per row of train_x"),
    ("test labels longer", (X, Y, XT, torch.cat([YT, YT])), "test_y", "one label per row of test_x"),
    ("float labels", (X, Y.float(), XT, YT), "train_y", "integer class ids"),
    ("float test labels", (X, Y, XT, YT.float()), "test_y", "integer class ids"),
    ("bool labels", (X, Y.bool(), XT, YT), "train_y", "integer class ids"),
    ("negative labels", (X, Y - 1, XT, YT), "train_y", "class ids 0..C-1"),
    ("labels (N, 1)", (X, Y[:, None], XT, YT), "train_y", "y.flatten()"),
    ("one-hot labels", (X, torch.nn.functional.one_hot(Y), XT, YT), "train_y", "y.argmax(1)"),
    ("NaN train features", (nan_at(X), Y, XT, YT), "train_x", "NaN or inf"),
    ("inf test features", (X, Y, XT.index_fill(0, torch.tensor([3]), float("inf")), YT), "test_x", "NaN or inf"),
    ("one training class", (X, torch.zeros_like(Y), XT, YT), "train_y", "at least two classes"),
    ("empty training set", (X[:0], Y[:0], XT, YT), "train_x", "at least 2 example"),
    ("one training example", (X[:1], Y[:1], XT, YT), "train_x", "at least 2 example"),
    ("empty test set", (X, Y, XT[:0], YT[:0]), "test_x", "at least 1 example"),
    ("test width differs", (X, Y, XT[:, :4], YT), "test_x", "training features' width, 5"),
    ("4-D feature maps", (X.view(24, 5, 1, 1), Y, XT.view(12, 5, 1, 1), YT), "train_x", "pool or flatten"),
    ("1-D features", (X[:, 0], Y, XT[:, 0], YT), "train_x", "x[:, None]"),
    ("numpy features", (X.numpy(), Y, XT.numpy(), YT), "train_x", "torch tensor"),
    ("numpy labels", (X, Y.numpy(), XT, YT), "train_y", "torch tensor"),
]


@pytest.mark.parametrize("probe", list(PROBES))
@pytest.mark.parametrize("case, args, argument, fix", SHARED, ids=[c[0] for c in SHARED])
def test_probes_refuse_bad_features_and_labels(probe, case, args, argument, fix):
    with raises(InputError, argument, fix):
        PROBES[probe](*args)


@pytest.mark.parametrize("call, kind, argument, fix", [
    (lambda: probes.knn_accuracy(X, Y, XT, YT, k=0), InputError, "k", "1 <= k <= 24"),
    (lambda: probes.knn_accuracy(X, Y, XT, YT, k=-1), InputError, "k", "1 <= k <= 24"),
    (lambda: probes.knn_accuracy(X, Y, XT, YT, k=25), InputError, "k", "1 <= k <= 24"),
    (lambda: probes.knn_accuracy(X, Y, XT, YT, k=2.5), InputError, "k", "an integer k"),
    (lambda: probes.knn_accuracy(X, Y, XT, YT, k=True), InputError, "k", "an integer k"),
    (lambda: probes.linear_probe(X, Y, XT, YT, cfg={"steps": 10}), InputError, "cfg", "ProbeConfig"),
    (lambda: probes.ProbeConfig(steps=0), InputError, "ProbeConfig.steps", "positive number of optimiser steps"),
    (lambda: probes.ProbeConfig(steps=2.5), InputError, "ProbeConfig.steps", "positive number of optimiser steps"),
    (lambda: probes.ProbeConfig(lr=-1), InputError, "ProbeConfig.lr", "positive, finite learning rate"),
    (lambda: probes.ProbeConfig(lr=float("nan")), InputError, "ProbeConfig.lr", "positive, finite learning rate"),
    (lambda: probes.ProbeConfig(weight_decay=-1e-4), InputError, "ProbeConfig.weight_decay", ">= 0"),
    (lambda: probes.ProbeConfig(seed=-1), InputError, "ProbeConfig.seed", "non-negative integer seed"),
    (lambda: probes.few_label_probe(X, Y, XT, YT, per_class=0, cfg=CFG), InputError, "per_class", "positive"),
    (lambda: probes.few_label_probe(X, Y, XT, YT, per_class=9, cfg=CFG), InputError, "per_class", "per_class <= 8"),
    (lambda: probes.few_label_probe(X, Y, XT, YT, per_class=2, draws=0, cfg=CFG), InputError, "draws", "positive"),
    (lambda: probes.few_label_probe(X, Y, XT, YT, cfg="fast"), InputError, "cfg", "ProbeConfig"),
], ids=["k=0", "k<0", "k>N", "k float", "k bool", "cfg dict", "steps 0", "steps float", "lr<0", "lr nan",
        "weight decay<0", "seed<0", "per_class 0", "per_class>class size", "draws 0", "cfg str"])
def test_probe_arguments(call, kind, argument, fix):
    with raises(kind, argument, fix):
        call()


def test_valid_label_dtypes_give_the_same_accuracy():
    """int32/uint8 labels used to fail in one probe or another; now they give the int64 answer."""
    ref = probes.knn_accuracy(X, Y, XT, YT, k=3), probes.linear_probe(X, Y, XT, YT, CFG)
    for dtype in (torch.int32, torch.uint8, torch.int16):
        assert (probes.knn_accuracy(X, Y.to(dtype), XT, YT.to(dtype), k=3),
                probes.linear_probe(X, Y.to(dtype), XT, YT.to(dtype), CFG)) == ref


# ------------------------------------------------------------------------------------- pixel MLPs, miou

FEATS, MASKS = torch.randn(2, 4, 6, 6, generator=g), torch.randint(0, 3, (2, 6, 6), generator=g)
MLP = probes.PixelMLP(4, 3).eval()


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.train_pixel_ensemble(FEATS, torch.randint(0, 3, (2, 12, 12)), 3), "masks", "shape (2, 6, 6)"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS + 1, 3), "masks", "pass ids in 0..2"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS - 1, 3), "masks", "pass ids in 0..2"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS.float(), 3), "masks", "integer class ids"),
    (lambda: probes.train_pixel_ensemble(FEATS[0], MASKS, 3), "feats", "(N, F, H, W)"),
    (lambda: probes.train_pixel_ensemble(nan_at(FEATS), MASKS, 3), "feats", "NaN or inf"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS, 0), "classes", "number of classes"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS, 3, models=0), "models", "positive ensemble size"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS, 3, steps=0), "steps", "positive number of training steps"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS, 3, batch=1), "batch", "at least 2 pixels"),
    (lambda: probes.train_pixel_ensemble(FEATS, MASKS, 3, lr=0), "lr", "positive, finite learning rate"),
], ids=["masks at another resolution", "mask ids >= classes", "negative mask ids", "float masks", "3-D features",
        "NaN features", "classes 0", "models 0", "steps 0", "batch 1", "lr 0"])
def test_train_pixel_ensemble(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.predict_pixels([], FEATS), "models", "list of MLPs"),
    (lambda: probes.predict_pixels(MLP, FEATS), "models", "list of MLPs"),
    (lambda: probes.predict_pixels([MLP], FEATS[:, :3]), "feats", "the 4 channels"),
    (lambda: probes.predict_pixels([MLP], nan_at(FEATS)), "feats", "NaN or inf"),
    (lambda: probes.predict_pixels([MLP], FEATS[0]), "feats", "(N, F, H, W)"),
], ids=["no models", "one model, not a list", "channels differ", "NaN features", "3-D features"])
def test_predict_pixels(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.miou(MASKS[0].flatten(), MASKS[0].flatten()[:, None], 3), "pred", "shape (36, 1)"),
    (lambda: probes.miou(MASKS, MASKS, 2), "target", "pass ids in 0..1"),
    (lambda: probes.miou(MASKS.float(), MASKS, 3), "pred", "integer class ids"),
    (lambda: probes.miou(MASKS[:0], MASKS[:0], 3), "target", "at least one pixel"),
    (lambda: probes.miou(MASKS, MASKS, 0), "classes", "number of classes"),
], ids=["broadcastable shapes", "ids >= classes", "float prediction", "empty", "classes 0"])
def test_miou(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


def test_miou_no_longer_broadcasts_a_prediction_against_a_column():
    """Before, miou(pred (K,), target (K, 1)) compared every pixel with every other: 1/3 for a perfect match."""
    t = torch.tensor([0, 0, 1, 1])
    assert probes.miou(t, t, 2) == 1.0
    with raises(InputError, "pred", "the target's shape"):
        probes.miou(t, t[:, None], 2)


# ------------------------------------------------------------------------------ DIFT and Hyperfeatures

SRC = torch.randn(4, 8, 8, generator=g)
PTS = torch.tensor([[1.5, 2.5], [5.0, 6.0]])
MAPS = torch.randn(2, 4, 6, 6, generator=g)
KP = torch.tensor([[[[2.0, 3.0], [5.0, 5.0], [9.0, 1.0]]], [[[3.0, 3.0], [6.0, 5.0], [10.0, 2.0]]]])
VIS = torch.tensor([[[True, True, False]], [[True, False, True]]])
PAIRS = torch.tensor([[0, 0, 1, 0]])


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.match_points(SRC[None], SRC, PTS, 16), "src", "maps[i], not the batch"),
    (lambda: probes.match_points(SRC, SRC[:3], PTS, 16), "tgt", "the source's 4 channels"),
    (lambda: probes.match_points(SRC, SRC, torch.rand(2, 5) * 16, 16), "points", "(K, 2) tensor"),
    (lambda: probes.match_points(SRC, SRC, PTS * 10, 16), "points", "in [0, 16]"),
    (lambda: probes.match_points(SRC, SRC, nan_at(PTS), 16), "points", "NaN or inf"),
    (lambda: probes.match_points(SRC, SRC, PTS, 0), "image_size", "side in pixels"),
    (lambda: probes.match_points(nan_at(SRC), SRC, PTS, 16), "src", "repair the source features"),
], ids=["batched map", "channels differ", "points (2, K)", "points at another scale", "NaN points",
        "image_size 0", "NaN features"])
def test_match_points(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.pck(PTS, PTS[:1], 1.0), "gt", "one true point per prediction"),
    (lambda: probes.pck(PTS[:0], PTS[:0], 1.0), "pred", "at least one predicted point"),
    (lambda: probes.pck(PTS, PTS, -1.0), "threshold", "distance in pixels >= 0"),
    (lambda: probes.pck(PTS, PTS, float("nan")), "threshold", "distance in pixels >= 0"),
    (lambda: probes.pck(nan_at(PTS), PTS, 1.0), "pred", "NaN or inf"),
], ids=["shapes differ", "no points", "negative threshold", "NaN threshold", "NaN prediction"])
def test_pck(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.keypoint_pck(MAPS, KP, VIS.long(), PAIRS, 12, 3.0), "visible", "visible.bool()"),
    (lambda: probes.keypoint_pck(MAPS, KP, torch.tensor([[[True, False, False]], [[False, True, True]]]), PAIRS,
                                 12, 3.0), "pairs", "share a visible keypoint"),
    (lambda: probes.keypoint_pck(MAPS, KP, VIS, torch.tensor([[0, 0, 2, 0]]), 12, 3.0), "pairs", "indices in 0..1"),
    (lambda: probes.keypoint_pck(MAPS, KP, VIS, PAIRS[:0], 12, 3.0), "pairs", "at least one pair"),
    (lambda: probes.keypoint_pck(MAPS, KP, VIS, PAIRS[:, :3], 12, 3.0), "pairs", "at least one pair"),
    (lambda: probes.keypoint_pck(MAPS, KP, VIS, PAIRS.float(), 12, 3.0), "pairs", "integer rows"),
    (lambda: probes.keypoint_pck(MAPS, KP * 10, VIS, PAIRS, 12, 3.0), "keypoints", "in [0, 12]"),
    (lambda: probes.keypoint_pck(MAPS, KP[:1], VIS[:1], PAIRS, 12, 3.0), "keypoints", "one row per map (N = 2)"),
    (lambda: probes.keypoint_pck(MAPS[0], KP, VIS, PAIRS, 12, 3.0), "maps", "(N, F, H, W)"),
    (lambda: probes.keypoint_pck(MAPS, KP, VIS, PAIRS, 12, -3.0), "threshold", "distance in pixels >= 0"),
], ids=["integer visibility", "no common keypoint", "index out of range", "no pairs", "3 columns", "float pairs",
        "keypoints at another scale", "keypoints of another batch", "one map", "negative threshold"])
def test_keypoint_pck(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


def test_keypoint_pck_with_an_integer_mask_no_longer_gathers_the_wrong_points():
    """Before, visible.long() indexed keypoints 0 and 1 instead of selecting the visible ones (3 matches, not 1)."""
    score, matches = probes.keypoint_pck(MAPS, KP, VIS, PAIRS, 12, 3.0)
    assert matches[0][0].shape == (1, 2) and 0.0 <= score <= 1.0
    with raises(InputError, "visible", "integer masks would index points"):
        probes.keypoint_pck(MAPS, KP, VIS.long(), PAIRS, 12, 3.0)


HYPER = probes.Hyperfeatures({"a": 4}, (0, 5), dim=8, size=6)
F8 = torch.randn(8, 6, 6, generator=g)


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: probes.Hyperfeatures({}, (0,)), "channels", "for at least one layer"),
    (lambda: probes.Hyperfeatures({"a": 2.0}, (0,)), "channels", "for at least one layer"),
    (lambda: probes.Hyperfeatures({"a": 2}, ()), "timesteps", "distinct timesteps"),
    (lambda: probes.Hyperfeatures({"a": 2}, (0, 0)), "timesteps", "distinct timesteps"),
    (lambda: probes.Hyperfeatures({"a": 2}, (0,), dim=12), "dim", "divisible by 8"),
    (lambda: probes.Hyperfeatures({"a": 2}, (0,), size=0), "size", "output side"),
    (lambda: HYPER({(0, "a"): torch.randn(2, 4, 4, 4)}), "maps", "missing [(5, 'a')]"),
    (lambda: HYPER({"0/a": torch.randn(2, 4, 4, 4), "5/a": torch.randn(2, 4, 4, 4)}), "maps", "every (t, layer)"),
    (lambda: HYPER([torch.randn(2, 4, 4, 4)]), "maps", "framework.feature_maps"),
    (lambda: probes.correspondence_loss(F8, F8, PTS[:0], PTS[:0], 12), "pa", "at least one matching point"),
    (lambda: probes.correspondence_loss(F8[None], F8[None], PTS, PTS, 12), "fa", "(C, s, s)"),
    (lambda: probes.correspondence_loss(F8, F8[:4], PTS, PTS, 12), "fb", "shaped like fa"),
    (lambda: probes.correspondence_loss(F8, F8, PTS, PTS[:1], 12), "pb", "one match per point of pa"),
    (lambda: probes.correspondence_loss(F8, F8, PTS, PTS, 12, temperature=0), "temperature", "positive"),
    (lambda: probes.correspondence_loss(F8, F8, PTS, PTS, 0), "image_size", "side in pixels"),
], ids=["no layers", "float channels", "no timesteps", "repeated timestep", "dim 12", "size 0", "missing map",
        "string keys", "maps a list", "no points", "batched fa", "fb shape", "pb shape", "temperature 0",
        "image_size 0"])
def test_hyperfeatures_and_correspondence_loss(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


# ------------------------------------------------------------------------------------- the grid framework

GTR = {fw.cell(t, l): torch.randn(24, 5, generator=g) for t in (0, 5) for l in ("a", "b")}
GTE = {k: torch.randn(12, 5, generator=g) for k in GTR}
IMGS = torch.randn(3, 1, 8, 8, generator=g)


@pytest.mark.parametrize("call, kind, argument, fix", [
    (lambda: fw.probe_grid({}, Y, {}, YT), GridError, "train", "at least one cell"),
    (lambda: fw.probe_grid(GTR, Y, {"0/a": GTE["0/a"]}, YT), GridError, "test", "the same cells"),
    (lambda: fw.probe_grid({"0/a": GTR["0/a"]}, Y, GTE, YT), GridError, "train", "the same cells"),
    (lambda: fw.probe_grid(GTR, Y, GTE, YT, probe="svm"), InputError, "probe", "choose 'linear' or 'knn'"),
    (lambda: fw.probe_scores(GTR, Y, {"val": GTE}), InputError, "evals", "{name: (grid, labels)}"),
    (lambda: fw.probe_scores(GTR, Y, {"val": (GTE, YT), "test": ({"0/a": GTE["0/a"]}, YT)}), GridError, "test",
     "the same cells"),
    (lambda: fw.probe_grid(X, Y, XT, YT), InputError, "train", "grid {cell(t, layer)"),
    (lambda: fw.probe_grid({**GTR, "5/b": X[:20]}, Y, GTE, YT), InputError, "train_y", "one label per row of train['5/b']"),
    (lambda: fw.probe_grid(GTR, Y, {**GTE, "0/b": nan_at(XT)}, YT), InputError, "test['0/b']", "NaN or inf"),
    (lambda: fw.probe_grid(GTR, Y, {**GTE, "5/a": XT[:, :3]}, YT), InputError, "test['5/a']", "width, 5"),
    (lambda: fw.probe_grid({**GTR, "0/a": X.view(24, 5, 1, 1)}, Y, GTE, YT), InputError, "train['0/a']",
     "pool or flatten"),
    (lambda: fw.probe_grid({k: v[:12] for k, v in GTR.items()}, Y[:12], GTE, YT, probe="knn"), InputError,
     "train['0/a']", "at least 20 training examples"),
    (lambda: fw.probe_grid(GTR, Y.float(), GTE, YT), InputError, "train_y", "integer class ids"),
    (lambda: fw.probe_grid(GTR, Y * 0, GTE, YT), InputError, "train_y", "at least two classes"),
    (lambda: fw.probe_grid(GTR, Y, GTE, YT, cfg=None), InputError, "cfg", "ProbeConfig"),
], ids=["empty grid", "cell missing in test", "cell missing in train", "unknown probe", "evals not pairs",
        "cell missing in one eval set", "tensor, not a grid",
        "cell with other rows", "NaN cell", "narrow cell", "4-D cell", "k-NN on 12 rows", "float labels",
        "one class", "cfg None"])
def test_probe_grid(call, kind, argument, fix):
    with raises(kind, argument, fix):
        call()


def test_probe_grid_checks_every_cell_before_training_any(monkeypatch):
    trained = []
    monkeypatch.setattr(fw.probes, "_linear_probe_scores", lambda *a: trained.append(1) or [0.5])
    with raises(InputError, "test['5/b']", "NaN or inf"):
        fw.probe_grid(GTR, Y, {**GTE, "5/b": nan_at(XT, 11)}, YT)
    assert not trained


@pytest.mark.parametrize("call, kind, argument, fix", [
    (lambda: fw.grid_search(lambda c: 1.0, []), GridError, "cells", "at least one (t, block) cell"),
    (lambda: fw.grid_search(lambda c: 1.0, "25/up.1"), GridError, "cells", "a single cell still goes in a list"),
    (lambda: fw.grid_search(lambda c: 1.0, 5), GridError, "cells", "a list of cells"),
    (lambda: fw.grid_search({0: 1.0}, [0]), InputError, "score", "a function cell -> number"),
    (lambda: fw.grid_search(lambda c: None, [0, 1]), GridError, "score(0)", "one number per cell"),
    (lambda: fw.grid_search(lambda c: torch.ones(2), [0]), GridError, "score(0)", "one number per cell"),
    (lambda: fw.grid_search(lambda c: float("nan") if c == 1 else c, [0, 1, 2]), GridError, "score(1)",
     "leave the cell out"),
], ids=["no cells", "one string", "an int", "score a dict", "score None", "score a vector", "NaN score"])
def test_grid_search(call, kind, argument, fix):
    with raises(kind, argument, fix):
        call()


@pytest.mark.parametrize("seed", range(20))
def test_grid_search_answer_does_not_depend_on_the_order_of_the_cells(seed):
    """Property: the best cell is the argmax whatever the order of the cells, and a NaN score is an error. Before,
    max() kept a NaN that came first (it compares False with everything), so a failed cell could 'win'."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 8, (1,), generator=gen))
    scores = {(t, "up.1"): float(s) for t, s in enumerate(torch.rand(n, generator=gen))}
    want = max(scores, key=scores.get)
    for _ in range(3):
        order = [list(scores)[i] for i in torch.randperm(n, generator=gen)]
        best, grid = fw.grid_search(scores.get, order)
        assert best == want and grid == scores
    broken = {**scores, order[0]: float("nan")}                     # the failed cell comes first
    with raises(GridError, f"score({order[0]!r})", "leave the cell out"):
        fw.grid_search(broken.get, order)


@pytest.mark.parametrize("call, kind, argument, fix", [
    (lambda: fw.as_table({}, (0,), ["a"]), GridError, "grid", "non-empty grid"),
    (lambda: fw.as_table({(0, "a"): 0.9}, (0,), ["a"]), GridError, "grid", "convert the keys"),
    (lambda: fw.as_table({"0/a": 0.9}, (5,), ["b"]), GridError, "grid", "the ts and layers the grid was computed"),
    (lambda: fw.as_table({"0/a": 0.9}, (), ["a"]), GridError, "ts", "non-empty list of integer timesteps"),
    (lambda: fw.as_table({"0/a": 0.9}, (0, 0), ["a"]), GridError, "ts", "each timestep once"),
    (lambda: fw.as_table({"0/a": 0.9}, (0,), "a"), InputError, "layers", "a single path still goes in a list"),
    (lambda: fw.as_table({"0/a": 0.9}, (0,), []), InputError, "layers", "non-empty list of module paths"),
    (lambda: fw.cell(2.5, "a"), GridError, "t", "integer timestep"),
    (lambda: fw.cell("0/a", "b"), GridError, "t", "integer timestep"),
    (lambda: fw.cell(True, "a"), GridError, "t", "integer timestep"),
    (lambda: fw.cell(0, ""), InputError, "layer", "module path as a string"),
    (lambda: fw.split_cell("up.1"), GridError, "key", "a key made by cell(t, layer)"),
    (lambda: fw.split_cell((0, "up.1")), GridError, "key", "a key made by cell(t, layer)"),
    (lambda: fw.split_cell("x/up.1"), GridError, "key", "a key made by cell(t, layer)"),
], ids=["empty grid", "tuple keys", "other ts and layers", "no ts", "repeated t", "layers a string", "no layers",
        "fractional t", "string t", "bool t", "empty layer", "no slash", "tuple key", "t not a number"])
def test_as_table_cell_and_split_cell(call, kind, argument, fix):
    with raises(kind, argument, fix):
        call()


def test_cell_spells_integer_timesteps_of_any_type_alike():
    assert fw.cell(25, "up.1") == fw.cell(np.int64(25), "up.1") == fw.cell(torch.tensor(25), "up.1") == "25/up.1"
    assert fw.split_cell(fw.cell(25, "a/b")) == (25, "a/b") and fw.split_cell(fw.cell(25.0, "a")) == (25, "a")


@pytest.mark.parametrize("call, kind, argument, fix", [
    (lambda: fw.feature_vectors(None, IMGS, (), ["up.1"]), GridError, "ts", "non-empty list of integer"),
    (lambda: fw.feature_vectors(None, IMGS, (0, 0), ["up.1"]), GridError, "ts", "each timestep once"),
    (lambda: fw.feature_vectors(None, IMGS, (2.5,), ["up.1"]), GridError, "ts", "integer timesteps"),
    (lambda: fw.feature_vectors(None, IMGS, (0,), "up.1"), InputError, "layers", "still goes in a list"),
    (lambda: fw.feature_vectors(None, IMGS, (0,), ["up.1", "up.1"]), InputError, "layers", "each module path once"),
    (lambda: fw.feature_vectors(None, IMGS, (0,), ["up.1"], batch=0), InputError, "batch", "positive number"),
    (lambda: fw.feature_vectors(None, IMGS, (0,), ["up.1"], pool_size=0), InputError, "pool_size", "None for a"),
    (lambda: fw.feature_vectors(None, IMGS, (0,), ["up.1"], extras=-1), InputError, "extras", "non-patch tokens"),
    (lambda: fw.feature_vectors(None, IMGS[:0], (0,), ["up.1"]), InputError, "x", "at least one clean image"),
    (lambda: fw.feature_vectors(None, IMGS.numpy(), (0,), ["up.1"]), InputError, "x", "at least one clean image"),
    (lambda: fw.feature_vectors(None, (IMGS > 0).to(torch.uint8), (0,), ["up.1"]), InputError, "x", "x.float()"),
    (lambda: fw.feature_maps(None, IMGS, (0,), ["up.1"], ensemble=0), InputError, "ensemble", "positive number"),
    (lambda: fw.feature_maps(None, IMGS, [], ["up.1"]), GridError, "ts", "non-empty list"),
    (lambda: fw.feature_maps(None, IMGS, (0, 5), ["a", "a"]), InputError, "layers", "each module path once"),
    (lambda: fw.dense_features(None, IMGS, 0, ["up.1"], size=0), InputError, "size", "output side in pixels"),
    (lambda: fw.dense_features(None, IMGS, 0, ["a", "a"], size=8), InputError, "layers", "each module path once"),
    (lambda: fw.dense_features(None, IMGS, 0, ["a"], size=8, batch=0), InputError, "batch", "positive number"),
    (lambda: fw.dense_features(None, IMGS, 0, ["a"], size=8, ensemble=-1), InputError, "ensemble", "positive"),
    (lambda: fw.noise_draws(IMGS, 0, 0), InputError, "ensemble", "positive number of noise draws"),
    (lambda: fw.noise_draws(IMGS.long(), 0), InputError, "x", "x.float()"),
], ids=["fv no ts", "fv repeated t", "fv fractional t", "fv layers a string", "fv repeated layer", "fv batch 0",
        "fv pool 0", "fv extras<0", "fv no images", "fv numpy", "fv uint8", "fm ensemble 0", "fm no ts",
        "fm repeated layer", "df size 0", "df repeated layer", "df batch 0", "df ensemble<0", "noise ensemble 0",
        "noise int x"])
def test_feature_extraction_arguments(call, kind, argument, fix):
    """Checked before the network is touched (it is None here)."""
    with raises(kind, argument, fix):
        call()


# ---------------------------------------------------------------------------------------------- metrics

CLF = Classifier().eval()
IMG = torch.rand(6, 1, 28, 28, generator=g) * 2 - 1
LAB = torch.arange(6) % 3
REF = (torch.zeros(128, dtype=torch.float64), torch.eye(128, dtype=torch.float64))
F4 = torch.randn(10, 4, dtype=torch.float64, generator=g)
MU, COV = metrics.gaussian_stats(F4)


@pytest.mark.parametrize("call, argument, fix", [
    (lambda: metrics.features(CLF, ((IMG + 1) * 127.5).to(torch.uint8)), "x", "x.float() / 127.5 - 1"),
    (lambda: metrics.features(CLF, (IMG + 1) * 127.5), "x", "x / 127.5 - 1"),
    (lambda: metrics.features(CLF, IMG[:, 0]), "x", "x[:, None]"),
    (lambda: metrics.features(CLF, IMG.flatten(1)), "x", "x.view(-1, 1, 28, 28)"),
    (lambda: metrics.features(CLF, torch.zeros(2, 1, 32, 32)), "x", "(N, 1, 28, 28)"),
    (lambda: metrics.features(CLF, torch.zeros(2, 3, 28, 28)), "x", "(N, 1, 28, 28)"),
    (lambda: metrics.features(CLF, nan_at(IMG)), "x", "NaN or inf"),
    (lambda: metrics.features(CLF, IMG[:0]), "x", "at least one image"),
    (lambda: metrics.features(CLF, IMG.numpy()), "x", "torch.as_tensor"),
    (lambda: metrics.features(CLF, IMG, batch=0), "batch", "positive number"),
    (lambda: metrics.gaussian_stats(F4[:1]), "feats", "at least 2 row"),
    (lambda: metrics.gaussian_stats(F4[:, 0]), "feats", "2-D tensor"),
    (lambda: metrics.gaussian_stats(F4.view(10, 1, 2, 2)), "feats", "x.flatten(1)"),
    (lambda: metrics.gaussian_stats(nan_at(F4)), "feats", "NaN or inf"),
    (lambda: metrics.frechet_distance(COV, MU, MU, COV), "mu1", "mean (D,) and covariance (D, D)"),
    (lambda: metrics.frechet_distance(MU, COV, MU[:3], COV[:3, :3]), "mu2", "D = 4"),
    (lambda: metrics.frechet_distance(MU, COV, MU, COV[:3]), "cov2", "here (4, 4)"),
    (lambda: metrics.frechet_distance(MU, COV + torch.triu(torch.ones_like(COV)), MU, COV), "cov1", "gaussian_stats"),
    (lambda: metrics.frechet_distance(MU * float("nan"), COV, MU, COV), "mu1", "finite features"),
    (lambda: metrics.fid_fm(CLF, IMG, REF), "x", "more than 128 images"),
    (lambda: metrics.fid_fm(CLF, IMG, torch.zeros(6, 128)), "ref_stats", "gaussian_stats(features(classifier"),
    (lambda: metrics.fid_fm(CLF, IMG, (REF[0], REF[1], 1)), "ref_stats", "(mean, covariance)"),
    (lambda: metrics.fid_fm(CLF, IMG, (REF[0], REF[1][:5])), "ref_stats[1]", "covariance (D, D)"),
    (lambda: metrics.fid_fm(CLF, (IMG + 1) * 127.5, REF), "x", "x / 127.5 - 1"),
    (lambda: metrics.sample_accuracy(CLF, IMG, LAB[:, None]), "y", "1-D tensor of length 6"),
    (lambda: metrics.sample_accuracy(CLF, IMG, LAB[:5]), "y", "one label per image (6)"),
    (lambda: metrics.sample_accuracy(CLF, IMG, LAB.float()), "y", "integer class ids"),
    (lambda: metrics.sample_accuracy(CLF, IMG.to(torch.uint8), LAB), "x", "scale pixels to [-1, 1]"),
    (lambda: metrics.sample_accuracy(CLF, IMG, LAB, batch=-1), "batch", "positive number"),
    (lambda: metrics.energy_distance(F4[:, 0], F4[:, 1]), "a", "2-D tensor"),
    (lambda: metrics.energy_distance(F4, F4[:, :3]), "b", "a's dimension, 4"),
    (lambda: metrics.energy_distance(F4[:0], F4), "a", "at least 1 row"),
    (lambda: metrics.energy_distance(F4, nan_at(F4)), "b", "NaN or inf"),
    (lambda: metrics.denoising_errors(None, F4, torch.tensor([])), "sigmas", "non-empty 1-D tensor"),
    (lambda: metrics.denoising_errors(None, F4, torch.tensor(1.0)), "sigmas", "one level still goes in a list"),
    (lambda: metrics.denoising_errors(None, F4, [0.5, -1.0]), "sigmas", ">= 0"),
    (lambda: metrics.denoising_errors(None, F4, [float("nan")]), "sigmas", "finite noise levels"),
    (lambda: metrics.denoising_errors(None, F4.long(), [1.0]), "x0", "float tensor"),
    (lambda: metrics.denoising_errors(None, F4[:0], [1.0]), "x0", "non-empty"),
    (lambda: metrics.diversity(IMG[:3], LAB[:3]), "y", "two samples of one class"),
    (lambda: metrics.diversity(IMG, LAB[:, None]), "y", "1-D tensor of length 6"),
    (lambda: metrics.diversity(IMG, LAB[:4]), "y", "one label per image (6)"),
    (lambda: metrics.diversity(nan_at(IMG), LAB), "x", "NaN or inf"),
    (lambda: metrics.diversity(IMG, LAB.float()), "y", "integer class ids"),
    (lambda: metrics.sample_metrics(CLF, {"images": IMG}, REF), "samples", "{'x': images"),
    (lambda: metrics.sample_metrics(CLF, IMG, REF), "samples", "{'x': images"),
    (lambda: metrics.sample_metrics(CLF, {"x": IMG.to(torch.uint8), "y": LAB}, REF), "samples['x']", "[-1, 1]"),
    (lambda: metrics.sample_metrics(CLF, {"x": IMG, "y": LAB[:2]}, REF), "samples['y']", "one label per image"),
], ids=["features uint8", "features [0, 255]", "features no channel axis", "features flat", "features 32 px",
        "features 3 channels", "features NaN", "features empty", "features numpy", "features batch 0",
        "stats one row", "stats 1-D", "stats 4-D", "stats NaN", "fd mean and cov swapped", "fd dims differ",
        "fd cov shape", "fd asymmetric cov", "fd NaN mean", "fid too few images", "fid features as ref",
        "fid triple ref", "fid ref cov shape", "fid [0, 255]", "acc labels (N, 1)", "acc labels short",
        "acc float labels", "acc uint8 images", "acc batch<0", "energy 1-D", "energy widths", "energy empty",
        "energy NaN", "denoise no sigmas", "denoise 0-d sigmas", "denoise negative sigma", "denoise NaN sigma",
        "denoise int x0", "denoise empty x0", "diversity singletons", "diversity labels (N, 1)",
        "diversity labels short", "diversity NaN", "diversity float labels", "sample set keys",
        "sample set a tensor", "sample set uint8", "sample set labels short"])
def test_metrics(call, argument, fix):
    with raises(InputError, argument, fix):
        call()


def test_sample_accuracy_no_longer_broadcasts_a_label_column():
    """Before, y (N, 1) compared every prediction with every label: 0.25 instead of 1.0 here."""
    class FourWay(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.arange(len(x)) % 4, 10).float()
    x, y = torch.zeros(8, 1, 28, 28), torch.arange(8) % 4
    assert metrics.sample_accuracy(FourWay(), x, y) == 1.0 and metrics.sample_accuracy(FourWay(), x, 1) == 0.25
    with raises(InputError, "y", "1-D tensor of length 8"):
        metrics.sample_accuracy(FourWay(), x, y[:, None])
