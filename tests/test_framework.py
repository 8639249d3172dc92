"""The Fig. 4 framework: grids of pooled features over (t, block), dense per-pixel features, and Eq. 16's search."""
import pytest
import torch

from diffrep_lib import features, framework as fw, runtime, schedules
from diffrep_lib.errors import GridError
from diffrep_lib.models import DiT, DiTConfig, UNet, UNetConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear())


def test_feature_vectors_cover_the_grid_with_one_noise_draw_per_image():
    torch.manual_seed(0)
    net = features.carry_schedule(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)).eval(), ABAR)
    x = torch.randn(5, 1, 28, 28)
    vecs = fw.feature_vectors(net, x, ts=(0, 100), layers=["down.1", "up.1"], pool_size=2, seed=7, batch=2)
    assert sorted(vecs) == ["0/down.1", "0/up.1", "100/down.1", "100/up.1"]
    assert vecs["100/up.1"].shape == (5, 8 * 4)
    eps = torch.randn((1, 5, 1, 28, 28), generator=torch.Generator().manual_seed(7))[0]
    manual = features.pool(features.extract(net, x, 100, ["up.1"], noise=eps)["up.1"], 2)
    assert torch.allclose(vecs["100/up.1"], manual, atol=1e-5)              # batching changes nothing
    assert fw.split_cell("100/up.1") == (100, "up.1")
    table = fw.as_table({"0/up.1": 0.5, "100/down.1": 0.25}, (0, 100), ["down.1", "up.1"])
    assert table[0, 1] == 0.5 and table[1, 0] == 0.25 and table[0, 0].isnan()


def test_dense_features_upsample_tokens_and_maps_to_pixels():
    torch.manual_seed(0)
    dit = features.carry_schedule(DiT(DiTConfig(dim=16, depth=2, heads=2, zero_init=False)).eval(), ABAR)
    maps = fw.dense_features(dit, torch.randn(3, 1, 28, 28), 10, ["blocks.0", "blocks.1"], size=28, batch=2,
                             ensemble=2)
    assert maps.shape == (3, 32, 28, 28)
    grid = fw.feature_maps(dit, torch.randn(3, 1, 28, 28), (0, 50), ["blocks.1"], ensemble=2)
    assert sorted(grid) == [(0, "blocks.1"), (50, "blocks.1")] and grid[(0, "blocks.1")].shape == (3, 49, 16)


def test_probe_grid_finds_a_planted_cell():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    informative = torch.nn.functional.one_hot(y, 3).float() * 2 + torch.randn(300, 3, generator=g)
    cells = {fw.cell(t, b): torch.randn(300, 3, generator=g) for t in (0, 25, 100) for b in ("mid", "up.1")}
    cells["25/up.1"] = informative
    train, test = {k: v[:200] for k, v in cells.items()}, {k: v[200:] for k, v in cells.items()}
    for probe in ("linear", "knn"):
        best, grid = fw.probe_grid(train, y[:200], test, y[200:], probe=probe)
        assert best == "25/up.1" and len(grid) == 6 and grid[best] > 0.8
    with pytest.raises(ValueError, match="unknown probe"):
        fw.probe_grid(train, y[:200], test, y[200:], probe="svm")
    with pytest.raises(GridError, match="only one"):
        fw.probe_grid(train, y[:200], {"0/mid": test["0/mid"]}, y[200:])


def test_probe_scores_fit_each_cell_once_and_match_probe_grid_on_every_set(monkeypatch):
    g = torch.Generator().manual_seed(1)
    y = torch.arange(400) % 4
    cells = {fw.cell(t, "up.1"): torch.nn.functional.one_hot(y, 4).float() * t / 25
             + torch.randn(400, 4, generator=g) for t in (0, 25, 50)}
    part = lambda a, b: {k: v[a:b] for k, v in cells.items()}
    fits = []
    real = fw.probes._linear_probe_scores
    monkeypatch.setattr(fw.probes, "_linear_probe_scores", lambda *a: fits.append(1) or real(*a))
    for probe in ("linear", "knn"):
        fits.clear()
        both = fw.probe_scores(part(0, 200), y[:200], {"val": (part(200, 300), y[200:300]),
                                                         "test": (part(300, 400), y[300:])}, probe)
        assert len(fits) == (3 if probe == "linear" else 0)          # one fit per cell, not one per set
        for name, (a, b) in (("val", (200, 300)), ("test", (300, 400))):
            _, alone = fw.probe_grid(part(0, 200), y[:200], part(a, b), y[a:b], probe)
            assert both[name] == alone                               # the same numbers, exactly
    with pytest.raises(ValueError, match=r"\{name: \(grid, labels\)\}"):
        fw.probe_scores(part(0, 200), y[:200], {"val": part(200, 300)})


def test_untrained_controls_the_start_of_training_and_a_random_nonlinear_network():
    from diffrep_lib import activations, models, recipes, zoo
    r = recipes.get("unet_fmnist", "quick")
    torch.manual_seed(r.seed)
    start = models.build(r.model)
    keep = zoo.untrained("unet_fmnist", "quick", zero_layers="keep")
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), keep.state_dict().values()))
    rand = zoo.untrained("unet_fmnist", "quick")
    assert not any(p.dim() > 1 and not p.any() for p in rand.parameters())
    x1, x2 = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    f = lambda net, x: features.extract(net, x, 0, ["up.1"], noise=torch.zeros_like(x))["up.1"]
    mix = lambda net: (f(net, 0.3 * x1 + 0.7 * x2), 0.3 * f(net, x1) + 0.7 * f(net, x2))
    assert torch.allclose(*mix(keep), atol=1e-4)                 # affine at initialisation: blocks are identities
    assert not torch.allclose(*mix(rand), atol=1e-2)
    with pytest.raises(ValueError, match="zero_layers"):
        zoo.untrained("unet_fmnist", "quick", zero_layers="zeros")
    with pytest.raises(ValueError, match="unknown control"):
        activations.network("unet_fmnist", "quick", "pretrained")


def test_ddae_grid_chooses_its_cell_on_validation_images_and_reports_test_there(cache, monkeypatch):
    from diffrep_lib import activations
    fake = {split: (torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(n)), torch.arange(n) % 10)
            for split, n in (("train", 1000), ("test", 100))}   # stands in for Fashion-MNIST (loading it is slow)
    monkeypatch.setattr(activations.fashion_mnist, "tensors", lambda split="train": fake[split])
    x, y, xt, yt = activations.probe_split((300, 40), seed=3)
    xv, yv = activations.validation_split((300, 40), seed=3)
    assert len(xv) == 40 and not any(torch.equal(a, b) for a in xv[:10] for b in x)     # disjoint from training
    g = activations.ddae_grid("unet_fmnist", "quick", "random", ts=(0, 500), layers=["down.1", "up.1"],
                              sizes=(300, 40), seed=3)
    for probe in ("linear", "knn"):
        val, test, chosen = g[f"val_{probe}"], g[probe], g[f"{probe}_cell"]
        assert val.shape == test.shape == (2, 2)
        t, layer = fw.split_cell(chosen)
        i, j = (0, 500).index(t), ["down.1", "up.1"].index(layer)
        assert val[i, j] == val.max()                          # the choice is the validation maximum ...
        assert test[i, j] == g["best_linear" if probe == "linear" else "best_knn"]   # ... reported on test
    assert g["best"] == g["linear_cell"]


def test_the_readout_grids_do_not_depend_on_the_batch_or_the_weight_layout():
    """Reading 150 images in batches of 7 (the last one short), in the device's feature batch or all at once, with
    contiguous or channels-last weights (`runtime.for_inference`, what zoo.get returns), gives the same features."""
    torch.manual_seed(0)
    net = features.carry_schedule(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)).eval(), ABAR)
    x = torch.randn(150, 1, 28, 28)
    kw = dict(ts=(10, 300), layers=["down.1", "up.2"])
    vec = fw.feature_vectors(net, x, **kw, batch=150)
    maps = fw.feature_maps(net, x, ensemble=2, **kw, batch=150)
    dense = fw.dense_features(net, x, 10, ["mid.2", "up.2"], size=28, ensemble=2, batch=150)
    runtime.for_inference(net, bf16=True)                       # bf16 on a CPU: the default layout
    assert net.down[1].res.conv1.weight.is_contiguous()
    runtime.for_inference(net)                                  # float32: channels-last
    w = net.down[1].res.conv1.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    for batch in (7, None):
        assert all(torch.allclose(v, vec[k], atol=1e-5) for k, v in fw.feature_vectors(net, x, **kw, batch=batch).items())
        got = fw.feature_maps(net, x, ensemble=2, **kw, batch=batch)
        assert all(torch.allclose(v, maps[k], atol=1e-5) for k, v in got.items())
        assert torch.allclose(fw.dense_features(net, x, 10, ["mid.2", "up.2"], size=28, ensemble=2, batch=batch),
                              dense, atol=1e-5)
    assert runtime.feature_batch("cpu") < len(x) <= runtime.feature_batch("cuda")       # None above ran batched
