"""Assignment-based guidance (ch. 9) and REPA's plumbing (ch. 12): clusters, conditions, recipes, curves."""
import dataclasses

import pytest
import torch

from diffrep_lib import assignments, losses, recipes, registry, repa, sampling, training, zoo
from diffrep_lib.models import DiT, DiTConfig, UNet, UNetConfig
from diffrep_lib.methods.assignments import SelfLabelled
from diffrep_lib.methods.repa import Aligned, match_grid


def planted(n_per: int = 100, seed: int = 0):
    """Three well separated groups of 16-d features, with their group ids."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(16)[:3] * 4
    ids = torch.arange(3).repeat_interleave(n_per)
    return centres[ids] + 0.3 * torch.randn(len(ids), 16, generator=g), ids


def test_kmeans_recovers_planted_clusters_and_checks_k():
    f, ids = planted()
    found, centres = assignments.kmeans(f, 3)
    assert centres.shape == (3, 16)
    assert assignments.purity(found, ids) == 1.0 and assignments.nmi(found, ids) == pytest.approx(1.0)
    assert torch.equal(assignments.nearest(f, centres), found)
    with pytest.raises(ValueError, match="k must be"):
        assignments.kmeans(f, 1)


def test_contingency_and_purity_on_a_mixed_example():
    ids, labels = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([2, 2, 1, 0, 0, 0])
    assert assignments.contingency(ids, labels).tolist() == [[0, 1, 2], [3, 0, 0]]
    assert assignments.purity(ids, labels) == pytest.approx(5 / 6)


def test_online_clusters_learn_balanced_planted_groups():
    """Prototypes trained only on their Sinkhorn-Knopp targets find the three planted groups, each used equally."""
    torch.manual_seed(0)
    f, ids = planted()
    clusters = assignments.OnlineClusters(16, 3)
    opt = torch.optim.Adam(clusters.parameters(), lr=0.05)
    for _ in range(100):
        batch = torch.randperm(len(f))[:96]
        _, loss = clusters(f[batch])
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    assigned, _ = clusters(f)
    assert torch.bincount(assigned, minlength=3).min() >= 90          # balanced within 10 of 100
    assert assignments.purity(clusters.assign(f), ids) > 0.95


class Spy(torch.nn.Module):
    """A denoiser that records the conditions it is given."""
    null_label = 10

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append(y)
        return x * self.w


def test_cluster_conditioning_drops_to_the_null_id():
    abar = torch.linspace(0.99, 0.01, 1000)
    x, ids = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    spy = Spy()
    losses.denoising_terms(spy, x, ids, abar=abar, prediction="eps", p_uncond=1.0, null=10)
    assert (spy.seen[-1] == 10).all()                                   # every condition dropped: the null id
    losses.denoising_terms(spy, x, ids, abar=abar, prediction="eps", p_uncond=0.0, null=10)
    assert torch.equal(spy.seen[-1], ids)
    # online: the ids come from the prototypes, and are dropped to the same null id
    teacher = type("T", (), {"to": lambda self, d: self, "pooled": lambda self, im: im.flatten(1)[:, :16]})()
    model = SelfLabelled(spy, assignments.OnlineClusters(16, 10), teacher)
    online = recipes.get("online_unet_fmnist")
    terms = assignments.online_cluster_terms(model, x, None, recipe=dataclasses.replace(online, p_uncond=1.0),
                                             abar=abar, null=10)
    assert (spy.seen[-1] == 10).all() and set(terms) == {"denoise", "cluster"}
    assignments.online_cluster_terms(model, x, None, recipe=dataclasses.replace(online, p_uncond=0.0), abar=abar, null=10)
    assert spy.seen[-1].max() < 10 and len(spy.seen[-1].unique()) > 1


def test_aligned_wrapper_trains_projector_and_exports_the_dit_alone():
    torch.manual_seed(0)
    net = DiT(DiTConfig(dim=32, depth=3, heads=2, zero_init=False))
    teacher = type("T", (), {"to": lambda self, d: self, "tokens": lambda self, im: torch.randn(len(im), 49, 8)})()
    model = Aligned(net, repa.Projector(32, 8, hidden=16), depth=2, teacher=teacher)
    r = dataclasses.replace(recipes.get("repa_dit_fmnist"), align_weight=0.5)
    abar = torch.linspace(0.99, 0.01, 1000)
    terms = {}
    loss = training.objective(r, model, torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), abar=abar, null=10,
                              terms_out=terms)
    assert set(terms) == {"denoise", "align"}
    assert loss.item() == pytest.approx(terms["denoise"].item() + 0.5 * terms["align"].item(), rel=1e-5)
    assert model.export() is net and "projector.net.0.weight" in model.state_dict()
    assert not any(k.startswith("_teacher") for k in model.state_dict())    # the teacher is not saved
    with pytest.raises(RuntimeError, match="without its teacher"):
        Aligned(net, model.projector, 2).teacher


def test_match_grid_resamples_square_token_grids_only():
    tokens = torch.ones(2, 49, 5) * torch.arange(5.0)
    assert match_grid(tokens, 49) is tokens
    up = match_grid(tokens, 196)
    assert up.shape == (2, 196, 5) and torch.allclose(up, torch.ones(2, 196, 5) * torch.arange(5.0))
    with pytest.raises(ValueError, match="square"):
        match_grid(tokens, 50)


def test_new_recipe_fields_keep_old_hashes_and_teacher_changes_propagate(monkeypatch):
    r = recipes.get("unet_fmnist")
    assert recipes.recipe_hash(dataclasses.replace(r, curve_every=0)) == recipes.recipe_hash(r)
    assert recipes.recipe_hash(dataclasses.replace(r, curve_every=100)) != recipes.recipe_hash(r)
    before = recipes.recipe_hash(recipes.get("cluster_unet_fmnist"))
    changed = {p: dataclasses.replace(v, steps=v.steps + 1) for p, v in recipes.RECIPES["simclr_fmnist"].items()}
    monkeypatch.setitem(recipes.RECIPES, "simclr_fmnist", changed)
    assert recipes.recipe_hash(recipes.get("cluster_unet_fmnist")) != before     # retrained teacher: retrain
    monkeypatch.setitem(recipes.RECIPES, "gpu_only", {"full": recipes.get("unet_fmnist", "full")})
    with pytest.raises(zoo.ZooError, match="full-only"):
        recipes.get("gpu_only", "quick")


def test_online_recipe_builds_its_prototypes_and_loads_without_teacher():
    r = recipes.get("online_unet_fmnist")
    model = zoo.build_model(r)
    assert isinstance(model, SelfLabelled) and model.clusters.k == r.clusters
    assert isinstance(model.net, UNet) and model.null_label == r.clusters
    assert isinstance(zoo.build_model(recipes.get("repa_dit_fmnist")), DiT)      # REPA keeps the DiT alone


def test_proportional_labels_follow_the_counts():
    y = sampling.proportional_labels(100, (50, 30, 20, 0))
    assert torch.bincount(y, minlength=4).tolist() == [50, 30, 20, 0]
    assert torch.bincount(y[:10], minlength=4).tolist() == [5, 3, 2, 0]         # mixed in every prefix
    assert torch.bincount(sampling.proportional_labels(7, (1, 1, 1))).tolist() in ([3, 2, 2], [2, 3, 2], [2, 2, 3])
    assert (sampling.condition_ids("null", 5, 10) == 10).all()
    with pytest.raises(ValueError, match="labels: got .clusters.; pass .balanced., .null. or a tuple"):
        sampling.condition_ids("clusters", 5, 10)


def test_steps_to_reach_interpolates_between_checkpoints():
    curve = [{"step": 500, "fid": 300.0}, {"step": 1000, "fid": 100.0}, {"step": 1500, "fid": 80.0}]
    assert repa.steps_to_reach(curve, 200.0) == pytest.approx(750.0)
    assert repa.steps_to_reach(curve, 400.0) == 500.0
    assert repa.steps_to_reach(curve, 50.0) is None


def test_control_conditions_give_random_and_pixel_ids(monkeypatch):
    """The controls of self-labelled guidance: random ids are a fixed seeded draw over k, pixel ids are k-means of
    the raw images (no teacher); a recipe differs from the self-labelled one only in its condition."""
    base = recipes.get("cluster_unet_fmnist")
    rnd = dataclasses.replace(base, name="random_ids", condition="random", teacher="")
    pix = dataclasses.replace(base, name="pixel_ids", condition="kmeans_pixels", teacher="")
    x = torch.zeros(5000, 1, 28, 28)
    ids = registry.condition("random").ids(rnd, x, None)
    assert torch.equal(ids, registry.condition("random").ids(rnd, x, None)) and ids.shape == (5000,)
    counts = torch.bincount(ids, minlength=rnd.clusters)
    assert len(counts) == rnd.clusters and counts.min() > 400                     # every id in use, near-uniform
    other = registry.condition("random").ids(dataclasses.replace(rnd, seed=1), x, None)
    assert not torch.equal(ids, other)
    seen = []
    monkeypatch.setattr(assignments, "kmeans_ids", lambda *a, **k: seen.append(a) or {"ids": torch.arange(3)})
    assert torch.equal(registry.condition("kmeans_pixels").ids(pix, x, None), torch.arange(3))
    assert seen == [("pixels", "quick", 10, 0)]


def test_condition_ids_are_the_ids_each_recipe_trained_on(monkeypatch):
    """zoo.condition_ids hands a notebook the ids a zoo model trained on: the recipe's own condition source on its
    own training images (its k-means seed, not the notebook's), the labels for a labelled model, and None for
    online clustering, whose ids are drawn in every step."""
    from diffrep_lib.zoo import build

    x, y = torch.zeros(5000, 1, 28, 28), torch.arange(5000) % 10
    monkeypatch.setattr(build.data, "training_set", lambda name: (x, y, None))
    rnd = zoo.condition_ids("cluster_unet_fmnist_random", "quick")
    assert torch.equal(rnd, registry.condition("random").ids(recipes.get("cluster_unet_fmnist_random"), x, y))
    seen = []
    monkeypatch.setattr(assignments, "kmeans_ids", lambda *a, **k: seen.append(a) or {"ids": torch.arange(4)})
    assert torch.equal(zoo.condition_ids("cluster_unet_fmnist", "quick"), torch.arange(4))
    assert torch.equal(zoo.condition_ids("cluster_unet_fmnist_pixels", "quick"), torch.arange(4))
    assert seen == [("simclr_fmnist", "quick", 10, 0), ("pixels", "quick", 10, 0)]
    assert torch.equal(zoo.condition_ids("unet_fmnist", "quick"), y)
    assert zoo.condition_ids("online_unet_fmnist", "quick") is None


def test_source_shows_a_library_function():
    from diffrep_lib import plotting

    html = plotting.source(assignments.sinkhorn_knopp)._repr_html_()
    assert "sinkhorn_knopp" in html and "highlight" in html
