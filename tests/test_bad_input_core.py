"""Bad input at the public boundaries of the diffusion core, feature extraction, generation and the zoo: each case
raises its family's error with a message that names the argument and what to do, and nothing returns a silently
wrong result (docs/ARCHITECTURE.md, "Errors")."""
import math

import numpy as np
import pytest
import torch

from diffrep_lib import (denoisers, diffusers_bridge, features, generation, guidance, parameterisation, recipes,
                         samplers, sampling, schedules, zoo)
from diffrep_lib.errors import GridError, InputError, ZooError
from diffrep_lib.models import Classifier, MLP, MLPConfig, UNet, UNetConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear())
GOOD = schedules.sigmas_karras(4, 0.01, 10.0)


def identity(x, sigma, cond=None):
    return torch.zeros_like(x)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2, num_classes=3)).eval()


# --- samplers: the grid, the starting point, the conditions -----------------------------------------------------

GRIDS = {
    "increasing": ([0.0, 1.0, 2.0], "not strictly decreasing"),
    "not ending at 0": ([2.0, 1.0, 0.5], "does not end at 0.*span='partial'"),
    "a repeated level": ([2.0, 1.0, 1.0, 0.0], "not strictly decreasing"),
    "negative": ([2.0, -1.0, 0.0], "not strictly decreasing"),
    "NaN": ([2.0, math.nan, 0.0], "not finite"),
    "inf": ([math.inf, 1.0, 0.0], "not finite"),
    "one level": ([0.0], "at least two levels"),
    "2-D": (torch.ones(2, 2), "1-D"),
    "a string": ("karras", "1-D tensor"),
    "ragged": ([[1.0], 2.0], "1-D sequence"),
}


@pytest.mark.parametrize("sampler", sorted(samplers.SAMPLERS))
@pytest.mark.parametrize("case", sorted(GRIDS))
def test_every_sampler_refuses_a_grid_it_cannot_use(sampler, case):
    grid, why = GRIDS[case]
    with pytest.raises(GridError, match=f"sigmas: got .*{why}"):
        samplers.SAMPLERS[sampler](identity, torch.randn(3, 2), grid)


@pytest.mark.parametrize("sampler", sorted(samplers.SAMPLERS))
def test_a_python_list_or_numpy_grid_is_accepted_and_equals_the_tensor_grid(sampler):
    x = torch.randn(3, 2, dtype=torch.float64)
    g = lambda: torch.Generator().manual_seed(0)
    want = samplers.SAMPLERS[sampler](identity, x, GOOD, generator=g())
    for grid in (GOOD.tolist(), GOOD.numpy()):
        assert torch.equal(samplers.SAMPLERS[sampler](identity, x, grid, generator=g()), want)


@pytest.mark.parametrize("kwargs,kind,match", [
    (dict(denoiser="unet"), InputError, "denoiser: got 'unet'.*pass a callable"),
    (dict(x=np.zeros((3, 2))), InputError, "x: got a ndarray.*float tensor"),
    (dict(x=torch.zeros(3, 2, dtype=torch.long)), InputError, "x: got .*int64.*float tensor"),
    (dict(x=torch.zeros(3)), InputError, r"x: got .*\(3,\).*float tensor \(N, ...\)"),
    (dict(cond=torch.zeros(2, dtype=torch.long)), InputError, "cond: .*one condition per sample.*length 3"),
    (dict(span="backwards"), GridError, "span: got 'backwards'; choose one of"),
    (dict(span="inverse", sampler="ddpm", sigmas=[0.1, 1.0]), GridError, "span: .*only the deterministic samplers"),
    (dict(span="inverse", sigmas=[0.0, 1.0]), GridError, "not strictly increasing from > 0"),
    (dict(eta=1.5, sampler="ddim"), InputError, r"eta: got 1.5; choose eta in \[0, 1\]"),
])
def test_sampler_arguments(kwargs, kind, match):
    args = dict(denoiser=identity, x=torch.randn(3, 2), sigmas=GOOD, sampler="euler")
    args.update(kwargs)
    fn = samplers.SAMPLERS[args.pop("sampler")]
    with pytest.raises(kind, match=match):
        fn(args.pop("denoiser"), args.pop("x"), args.pop("sigmas"), **args)


def test_partial_and_inverse_spans_run_what_they_say():
    x = torch.randn(3, 2, dtype=torch.float64)
    out = samplers.sample_euler(identity, x, [2.0, 1.0], span="partial")     # one step toward the zero prediction
    assert torch.allclose(out, x / 2)
    up = samplers.sample_euler(identity, x, [1.0, 2.0], span="inverse")
    assert torch.allclose(up, 2 * x)


@pytest.mark.parametrize("fn", [samplers.nfe, samplers.steps_for_nfe])
@pytest.mark.parametrize("name,count,match", [
    ("rk4", 10, "name: got 'rk4'; choose a sampler of"), ("heun", 0, "got 0 .*; pass a positive integer"),
    ("euler", -3, "got -3 .*; pass a positive integer"), ("euler", 2.5, "got 2.5 .*; pass a positive integer"),
    ("euler", True, "got True .*; pass a positive integer")])
def test_nfe_bookkeeping_refuses_unknown_samplers_and_budgets(fn, name, count, match):
    with pytest.raises(GridError, match=match):
        fn(name, count)


# --- schedules and grids -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,match", [
    ((1000, 0, "trailing"), "n: got 0 .*; take between 1 and T = 1000"),
    ((1000, 1001, "linspace"), "n: got 1001 .*; take between 1 and T = 1000"),
    ((0, 1, "leading"), "T: got 0 .*; pass the number of training steps"), ((1000, 10, "uniform"), "spacing: got 'uniform'; choose one of"),
    ((1000, 10.0, "trailing"), "n: got 10.0"),
])
def test_timesteps_arguments(args, match):
    with pytest.raises(GridError, match=match):
        schedules.timesteps(*args)


@pytest.mark.parametrize("args,match", [
    ((0, 0.01, 10.0), "n: got 0"), ((5, 10.0, 0.01), r"\(sigma_min, sigma_max\): got \(10.0, 0.01\)"),
    ((5, 0.0, 10.0), r"sigma_min, sigma_max\): got \(0.0, 10.0\)"), ((5, 0.01, math.inf), "finite"),
    ((5, 0.01, 10.0, -1.0), "rho: got -1.0")])
def test_karras_grid_arguments(args, match):
    with pytest.raises(GridError, match=match):
        schedules.sigmas_karras(*args)


def test_sampling_helpers_arguments():
    D = denoisers.VPDenoiser(MLP(MLPConfig()), ABAR)
    with pytest.raises(GridError, match="steps: got 0 .*; pass a positive number of steps"):
        sampling.sigma_grid(D, 0)
    with pytest.raises(GridError, match=r"kind: got 'cosine'; choose one of \('karras', 'trailing', 'uniform_t'\)"):
        sampling.sigma_grid(D, 5, "cosine")
    with pytest.raises(InputError, match="n: got 0 .*; pass a positive integer"):
        sampling.generate(D, 0, sampler="euler", sigmas=GOOD, shape=(2,))
    with pytest.raises(InputError, match="batch: got 0"):
        sampling.generate(D, 4, sampler="euler", sigmas=GOOD, shape=(2,), batch=0)
    with pytest.raises(InputError, match="cond: .*length n = 4"):
        sampling.generate(D, 4, sampler="euler", sigmas=GOOD, shape=(2,), cond=torch.zeros(3, dtype=torch.long))
    with pytest.raises(GridError, match="sigmas: got .*does not end at 0"):
        sampling.generate(D, 4, sampler="euler", sigmas=GOOD[:-1], shape=(2,))
    with pytest.raises(InputError, match="counts: .*non-negative, with a positive sum"):
        sampling.proportional_labels(10, (3, -1))
    with pytest.raises(InputError, match="labels: got 'uniform'; pass 'balanced', 'null' or a tuple"):
        sampling.condition_ids("uniform", 10, 10)
    with pytest.raises(InputError, match="labels: got 'null'.*needs a conditional model"):
        sampling.condition_ids("null", 10, None)


# --- the denoiser contract and its adapters ----------------------------------------------------------------------

def test_vp_denoiser_construction(unet):
    with pytest.raises(InputError, match="net: got 'Classifier \\(it outputs logits\\)'.*classifier_guidance"):
        denoisers.VPDenoiser(Classifier(), ABAR)                   # refused when wrapped, not when first called
    with pytest.raises(InputError, match="prediction: got 'score'; choose one of"):
        denoisers.VPDenoiser(unet, ABAR, "score")
    with pytest.raises(InputError, match="net: got <function.*pass a network"):
        denoisers.VPDenoiser(identity, ABAR)
    for bad_abar in (ABAR.view(10, 100), -ABAR, ABAR + 1):
        with pytest.raises(InputError, match="abar: .*alphas_cumprod"):
            denoisers.VPDenoiser(unet, bad_abar)


@pytest.mark.parametrize("x,sigma,cond,match", [
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 1.0, None, "x: got .*uint8.*convert uint8 images to \\[-1, 1\\]"),
    ("x", -1.0, None, "sigma: got -1.0.*finite and >= 0"),
    ("x", math.nan, None, "sigma: got nan.*finite and >= 0"),
    ("x", torch.ones(3), None, r"sigma: got .*\(3,\).*one per sample \(shape \(2,\)\)"),
    ("x", 1.0, torch.tensor([0, 4]), "cond: got .*labels run from 0 to 2, and 3 is the null label"),
    ("x", 1.0, torch.tensor([0.0, 1.0]), "cond: .*one integer label per sample"),
    ("x", 1.0, torch.tensor([0]), "cond: .*length 2"),
])
def test_vp_denoiser_calls(unet, x, sigma, cond, match):
    D = denoisers.VPDenoiser(unet, ABAR)
    x = torch.randn(2, 1, 28, 28) if isinstance(x, str) else x
    with pytest.raises(InputError, match=match):
        D(x, sigma, cond)


def test_an_unconditional_network_ignores_labels_and_a_wrong_output_shape_is_named():
    D = denoisers.VPDenoiser(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2, num_classes=None)), ABAR)
    x = torch.randn(2, 1, 28, 28)                                 # classifier guidance passes the classes through
    assert torch.equal(D(x, 1.0, torch.tensor([0, 7])), D(x, 1.0))

    class Logits(torch.nn.Module):                                  # a classifier without the output_kind mark
        def forward(self, x, t):
            return x.flatten(1)[:, :10]
    with pytest.raises(InputError, match=r"net: got 'an output of shape \(2, 10\).*is it a classifier"):
        denoisers.VPDenoiser(Logits(), ABAR)(torch.randn(2, 1, 28, 28), 1.0)


# --- guidance wrappers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda D, clf: guidance.cfg(D, math.nan, 3), "scale: got nan; pass a finite number"),
    (lambda D, clf: guidance.cfg(D, "2", 3), "scale: got '2'"),
    (lambda D, clf: guidance.cfg(D, 2.0, None), "null: got None .*; pass the network's null label id"),
    (lambda D, clf: guidance.cfg(D, 2.0, 3, interval=(5.0, 1.0)), r"interval: got \(5.0, 1.0\)"),
    (lambda D, clf: guidance.cfg("D", 2.0, 3), "denoiser: got 'D'; pass a denoiser"),
    (lambda D, clf: guidance.classifier_guidance(D, D.net, 1.0, D.sigmas), "classifier: .*noise-aware classifier"),
    (lambda D, clf: guidance.classifier_guidance(D, clf, 1.0, D.sigmas.flip(0)), "sigmas_table: .*increasing"),
    (lambda D, clf: guidance.classifier_guidance(D, clf, math.inf, D.sigmas), "scale: got inf"),
])
def test_guidance_arguments(unet, make, match):
    D = denoisers.VPDenoiser(unet, ABAR)
    with pytest.raises(InputError, match=match):
        make(D, Classifier())


def test_bridge_arguments(unet):
    from diffusers import DDIMScheduler
    D = denoisers.VPDenoiser(unet, ABAR)
    with pytest.raises(InputError, match="scheduler: got \"prediction_type='v_prediction'\""):
        diffusers_bridge.sample(D, DDIMScheduler(prediction_type="v_prediction"), torch.randn(1, 1, 28, 28), 5)
    with pytest.raises(GridError, match="steps: got 0 .*; pass 1 to 1000 steps"):
        diffusers_bridge.sample(D, DDIMScheduler(), torch.randn(1, 1, 28, 28), 0)
    with pytest.raises(InputError, match="kind: got 'score'"):
        parameterisation.to_x0(torch.zeros(1), "score", torch.zeros(1), torch.ones(1), torch.ones(1))


# --- feature extraction ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t,match", [
    (-1, "t: got -1 .*outside the schedule's 1000 steps.*\\[0, 999\\]"), (1000, "t: got 1000 .*outside"),
    (12.5, "t: got 12.5 .*not an integer: a fractional t would be truncated"),
    (torch.tensor([1, 2, 3]), "t: got .*one int or one per image"), ("50", "t: got '50'"), (True, "t: got True"),
])
def test_extract_refuses_timesteps_it_would_wrap_or_truncate(unet, t, match):
    net = features.carry_schedule(unet, ABAR)
    with pytest.raises(InputError, match=match):
        features.extract(net, torch.randn(2, 1, 28, 28), t, ["up.1"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers="up.1"), "layers: got 'up.1'; pass a list of module paths"),
    (dict(layers=[]), "layers: got \\[\\]; pass a list"),
    (dict(ensemble=0), "ensemble: got 0 .*; pass a positive number"),
    (dict(y=torch.tensor([0])), "y: got .*one integer label per image"),
    (dict(x=torch.zeros(2, 1, 28, 28, dtype=torch.uint8)), "x: got .*uint8.*float tensor"),
    (dict(noise=[0.0]), "noise: got \\[0.0\\]; pass a tensor shaped like x"),
    (dict(abar=-ABAR), "abar: got .*alphas_cumprod"),
])
def test_extract_arguments(unet, kwargs, match):
    args = dict(model=features.carry_schedule(unet, ABAR), x=torch.randn(2, 1, 28, 28), t=10, layers=["up.1"])
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        features.extract(**args)


def test_a_network_without_a_known_schedule_needs_abar(unet):
    bare = UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2, num_classes=None))
    with pytest.raises(InputError, match="abar: got None; a bare UNet does not say which noise schedule.*pass abar="):
        features.extract(bare, torch.randn(2, 1, 28, 28), 10, ["up.1"])
    cosine = schedules.alphas_cumprod(schedules.betas_cosine())      # given, its own schedule is used, not linear
    eps = torch.randn(2, 1, 28, 28)
    a = features.extract(bare, torch.randn(2, 1, 28, 28), 500, ["up.1"], abar=cosine, noise=eps)
    b = features.extract(bare, torch.randn(2, 1, 28, 28), 500, ["up.1"], abar=ABAR, noise=eps)
    assert not torch.allclose(a["up.1"], b["up.1"])
    assert torch.equal(zoo.get("unet_fmnist", "quick").schedule_abar, recipes.abar(recipes.get("unet_fmnist")))


def test_a_layer_listed_twice_equals_once_and_integral_float_t_equals_int(unet):
    net = features.carry_schedule(unet, ABAR)
    x, eps = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    once = features.extract(net, x, 10, ["up.1"], noise=eps)
    twice = features.extract(net, x, 10, ["up.1", "up.1"], noise=eps)
    assert list(twice) == ["up.1"] and torch.equal(once["up.1"], twice["up.1"])
    assert torch.equal(features.extract(net, x, 10.0, ["up.1"], noise=eps)["up.1"], once["up.1"])
    assert all(not m._forward_hooks for m in net.modules())


# --- generation and the zoo --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,kind,match", [
    (dict(nfe=0), GridError, "nfe: got 0 .*; pass a positive integer"),
    (dict(sampler="rk4"), GridError, "sampler: got 'rk4'; choose one of"),
    (dict(n=0), InputError, "n: got 0"), (dict(seed=-1), InputError, "seed: got -1"),
    (dict(grid="cosine"), GridError, "grid: got 'cosine'"), (dict(guide="cgf"), InputError, "guide: got 'cgf'"),
    (dict(scale=math.nan), InputError, "scale: got nan"),
])
def test_sample_set_checks_before_computing_or_memoising(cache, kwargs, kind, match):
    args = dict(sampler="euler", nfe=2, n=4)
    args.update(kwargs)
    with pytest.raises(kind, match=match):
        generation.sample_set("unet_fmnist", "quick", **args)
    assert not (cache / "memo").exists()


@pytest.mark.parametrize("call,match", [
    (lambda: zoo.get("resnet9000"), "name: got 'resnet9000' .*the zoo has"),
    (lambda: zoo.get("unet_fmnist", "quick", seed=-2), "seed: got -2 .*; pass a training seed >= 0"),
    (lambda: zoo.get("unet_fmnist", "quick", seed=1.5), "seed: got 1.5"),
    (lambda: zoo.record("unet_fmnist", "quick", seed=-1), "seed: got -1"),
    (lambda: zoo.denoiser("unet_fmnist", "quick", seed=-1), "seed: got -1"),
    (lambda: zoo.model_id("nope", "quick"), "name: got 'nope'"),
])
def test_zoo_names_and_seeds(call, match):
    with pytest.raises(ZooError, match=match):
        call()


def test_every_diffrep_error_is_one_base_class():
    from diffrep_lib import errors
    for kind in (GridError, InputError, ZooError, errors.DataError, errors.CacheError):
        assert issubclass(kind, errors.DiffrepError)
    assert issubclass(GridError, ValueError) and issubclass(InputError, ValueError)


@pytest.mark.parametrize("shape,match", [((2, 3, 28, 28), r"UNet takes \(N, 1, any, any\)"),
                                         ((2, 28, 28), r"UNet takes \(N, 1, any, any\)")])
def test_a_wrong_channel_count_is_named_before_the_network_runs(unet, shape, match):
    with pytest.raises(InputError, match="x: got .*" + match):
        denoisers.VPDenoiser(unet, ABAR)(torch.randn(shape), 1.0)
    with pytest.raises(InputError, match="x: got .*" + match):
        features.extract(features.carry_schedule(unet, ABAR), torch.randn(shape), 10, ["up.1"])


def test_a_wrong_image_size_is_named_for_a_transformer():
    from diffrep_lib.models import DiT, DiTConfig
    D = denoisers.VPDenoiser(DiT(DiTConfig(dim=16, depth=1, heads=2)), ABAR)
    with pytest.raises(InputError, match=r"x: got .*\(2, 1, 32, 32\).*DiT takes \(N, 1, 28, 28\)"):
        D(torch.randn(2, 1, 32, 32), 1.0)
