"""Generative augmentation's pieces (methods/synthetic.py, experiments/augmentation.py): the generated sets are
balanced, seeded and guided at the scale they record; shift_flip only moves and mirrors; the learner's splits keep
validation images out of every training set; bad input gets one clear error."""
import pytest
import torch

from diffrep_lib.core.sampling import sigma_grid
from diffrep_lib.errors import InputError
from diffrep_lib.experiments import augmentation as experiment
from diffrep_lib.methods import synthetic


class ClassMeans(torch.nn.Module):
    """A denoiser whose x0_hat is the constant image y / 10 for class y and 0 for the null label: guided at scale s,
    every sample converges to the constant s * y / 10 (clipped to [-1, 1])."""
    null_label = 10
    sigma_min, sigma_max, sigmas = 0.002, 80.0, torch.linspace(0.002, 80.0, 1000).double()

    def __init__(self):
        super().__init__()
        self.net = self

    def forward(self, x, sigma, cond=None):
        value = torch.where(cond == self.null_label, 0.0, cond / 10.0).to(x.dtype)
        return value[:, None, None, None].expand_as(x)


def make(per_class=3, scales=(1.0, 2.0, 5.0), seed=0, batch=32):
    D = ClassMeans()
    return synthetic.generate_labelled(D, per_class=per_class, scales=scales, seed=seed, batch=batch,
                                          sigmas=sigma_grid(D, 4))


def test_generated_sets_are_balanced_and_guided_at_the_scale_they_record():
    s = make()
    assert s["x"].shape == (30, 1, 28, 28) and torch.equal(s["y"], torch.arange(30) % 10)
    assert torch.bincount(s["y"]).tolist() == [3] * 10
    assert set(s["scale"].tolist()) <= {1.0, 2.0, 5.0} and len(set(s["scale"].tolist())) > 1
    want = (s["scale"] * s["y"] / 10).clamp(-1, 1).float()
    torch.testing.assert_close(s["x"].mean((1, 2, 3)), want, atol=1e-4, rtol=0)


def test_generated_sets_are_seeded_and_do_not_depend_on_the_batch():
    a, b, c = make(seed=3), make(seed=3, batch=7), make(seed=4)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["scale"], b["scale"])
    assert not torch.equal(a["scale"], c["scale"])


def test_one_scale_is_used_for_every_image_and_scales_are_checked():
    assert torch.equal(synthetic.scales_per_image(5, (2.0,), 0), torch.full((5,), 2.0, dtype=torch.float64))
    for bad in ((), [2.0], (float("nan"),), (-1.0,)):
        with pytest.raises(InputError, match="scales"):
            synthetic.scales_per_image(5, bad, 0)


def test_an_unconditional_denoiser_is_refused():
    with pytest.raises(InputError, match="null label"):
        synthetic.generate_labelled(lambda x, s, c=None: x, per_class=1, scales=(1.0,), seed=0,
                                       sigmas=torch.tensor([1.0, 0.0]))


def test_shift_flip_only_moves_and_mirrors_each_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 28, 28) * 2 - 1
    out = synthetic.shift_flip(x, g)
    assert out.shape == x.shape and not torch.equal(out, x)
    pad = torch.nn.functional.pad(x, (2,) * 4, value=-1.0)
    for i in range(len(x)):
        views = [pad[i, :, r:r + 28, c:c + 28] for r in range(5) for c in range(5)]
        views += [v.flip(-1) for v in views]
        assert any(torch.equal(out[i], v) for v in views)


def test_validation_images_are_never_in_a_labelled_subset(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x, y = torch.arange(3000.0).reshape(-1, 1, 1, 1), torch.randint(10, (3000,), generator=g)
    monkeypatch.setattr(experiment.fashion_mnist, "tensors", lambda split="train": (x, y))
    monkeypatch.setattr(experiment, "_train_order", lambda seed: torch.randperm(3000, generator=g))
    xr, yr, xv, yv = experiment.splits(5, 0)
    assert torch.bincount(yr, minlength=10).tolist() == [5] * 10 and len(xv) == experiment.VALIDATION
    assert not set(xr.flatten().tolist()) & set(xv.flatten().tolist())


@pytest.mark.parametrize("kwargs, name", [(dict(real=0), "real"), (dict(real=-1), "real"),
                                          (dict(real=1, synthetic=2, scales=()), "scales"),
                                          (dict(real=1, seed=-1), "seed")])
def test_learner_runs_refuse_bad_input(kwargs, name):
    with pytest.raises(InputError, match=name):
        experiment.learner_run("quick", **kwargs)


class Constant(torch.nn.Module):
    """x0_hat is always the image `target`: any sampler must end exactly there."""
    sigma_min, sigma_max = 0.01, 80.0

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x, sigma, cond=None):
        return self.target.expand_as(x)


def test_sdedit_ends_where_the_denoiser_points_and_checks_its_level():
    target = torch.linspace(-1, 1, 28 * 28).reshape(1, 1, 28, 28)
    x = torch.rand(6, 1, 28, 28)
    out = synthetic.sdedit(Constant(target), x, 1.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target.expand_as(x), atol=1e-5, rtol=0)
    for bad in (0.001, float("nan")):
        with pytest.raises(InputError, match="sigma"):
            synthetic.sdedit(Constant(target), x, bad)


def _views_recipe(**options):
    from dataclasses import replace

    from diffrep_lib.zoo import recipes
    return replace(recipes.get("simclr_sdedit", "quick"), options=tuple(options.items()))


def test_the_view_pool_is_seeded_and_without_generator_repeats_the_image(monkeypatch):
    from diffrep_lib.methods import generated_views
    x, y = torch.rand(50, 1, 28, 28), torch.arange(50) % 10
    monkeypatch.setattr(generated_views.data, "training_tensors", lambda name: (x, y))
    a, ya = generated_views.view_pool(_views_recipe(p0=0.0, pool=20))
    b, _ = generated_views.view_pool(_views_recipe(p0=0.0, pool=20))
    assert a.shape == (20, 2, 28, 28) and torch.equal(a, b) and torch.equal(a[:, 0], a[:, 1])
    assert len(set(a[:, 0].flatten(1).sum(1).tolist())) == 20          # 20 different images
    with pytest.raises(InputError, match="views"):
        generated_views.view_pool(_views_recipe(views="gan"))


def test_generated_views_replace_the_second_source_with_probability_p0():
    from diffrep_lib import models
    from diffrep_lib.methods import generated_views
    r = _views_recipe()
    net = models.build(r.model).eval()
    image = torch.rand(16, 1, 28, 28) * 2 - 1
    loss = lambda made, p0: generated_views.generated_view_terms(
        net, torch.cat([image, made], 1), recipe=_views_recipe(p0=p0),
        generator=torch.Generator().manual_seed(0))["nt_xent"]
    torch.testing.assert_close(loss(image, 1.0), loss(image, 0.0))       # the view is the image: same loss
    assert not torch.allclose(loss(-image, 1.0), loss(-image, 0.0))     # a different view changes it
    torch.testing.assert_close(loss(-image, 0.0), loss(image, 0.0))     # p0 = 0 never reads the view
