"""A new method plugs into the zoo through the registry alone: the worked example of docs/ARCHITECTURE.md, with
a toy method and a toy condition source trained for a few steps through `zoo.get`, without editing the zoo."""
import dataclasses

import pytest
import torch

from diffrep_lib import losses, recipes, registry, zoo
from diffrep_lib.models import ClassifierConfig, MLPConfig


# --- the toy method: L_simple plus a penalty on the size of the predicted noise, weighted by the recipe's option

def shrinkage_terms(net, x, y, *, recipe, abar, null=None, generator=None):
    terms = losses.denoising_terms(net, x, None, abar=abar, prediction=recipe.prediction, generator=generator)
    t = torch.randint(0, len(abar), (len(x),), generator=generator)
    terms["size"] = net(x, t).pow(2).mean(1)
    return terms


@torch.no_grad()
def mean_output(model, r):
    x = torch.zeros(256, 2)
    return {"output_rms": round(model(x, torch.full((256,), 500)).pow(2).mean().sqrt().item(), 5)}


SHRINK = registry.Method(terms=shrinkage_terms, evaluate=mean_output,
                         weights=lambda r: {"size": recipes.option(r, "size_weight", 0.1)})
TOY = recipes.Recipe(name="shrunk_toy", model=MLPConfig(hidden=16, depth=2), task="denoise_shrunk",
                     data="toy2d/8gaussians", steps=40, batch_size=64, lr=1e-2, warmup=0, p_uncond=0.0,
                     options=(("size_weight", 0.5),))


@pytest.fixture
def toy_method(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "denoise_shrunk", SHRINK)
    monkeypatch.setitem(recipes.RECIPES, "shrunk_toy", {"full": TOY})


def test_a_registered_toy_method_trains_through_the_zoo(cache, toy_method):
    model = zoo.get("shrunk_toy", "full")                     # trained on first use, through the one loop
    rec = zoo.record("shrunk_toy", "full")
    assert rec["steps"] == 40 and "output_rms" in rec["metrics"]                   # the method's evaluation
    assert set(rec["loss_curve"]["terms"]) == {"denoise", "size"}                   # its terms, both logged
    logged = rec["loss_curve"]
    total = [d + 0.5 * s for d, s in zip(logged["terms"]["denoise"], logged["terms"]["size"])]
    assert logged["loss"] == pytest.approx(total, rel=1e-3)                          # weighted as it declared
    assert isinstance(model, torch.nn.Module) and not model.training
    assert len(list((cache / "zoo").glob("shrunk_toy-full-*.safetensors"))) == 1


def test_an_option_enters_the_recipe_hash_only_when_set():
    plain = dataclasses.replace(TOY, options=())
    assert recipes.recipe_hash(plain) != recipes.recipe_hash(TOY)
    assert recipes.option(plain, "size_weight", 0.1) == 0.1 and recipes.option(TOY, "size_weight") == 0.5
    unet = recipes.get("unet_fmnist")                          # recipes without options keep their old hashes
    assert recipes.recipe_hash(dataclasses.replace(unet, options=())) == recipes.recipe_hash(unet)


def test_a_registered_condition_source_feeds_the_training_ids(monkeypatch):
    monkeypatch.setitem(registry.CONDITIONS, "parity", registry.Condition(ids=lambda r, x, y: y % 2))
    r = recipes.Recipe(name="parity_classifier", model=ClassifierConfig(num_classes=2), task="classify",
                       data="fashion_mnist", steps=5, batch_size=16, lr=1e-3, condition="parity")
    x, y, draw = zoo.training_data(r)
    assert draw is None and len(x) == len(y) == 60000 and set(y.unique().tolist()) == {0, 1}


def test_unknown_task_or_condition_names_what_is_registered():
    with pytest.raises(KeyError, match="registered: .*'denoise'"):
        registry.method("denoise_typo")
    with pytest.raises(KeyError, match="registered: .*'labels'"):
        registry.condition("lables")


def test_registering_a_taken_name_is_an_error():
    with pytest.raises(KeyError, match="registered already"):
        registry.register(registry.METHODS, "denoise", SHRINK)
