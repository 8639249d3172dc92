"""Flow matching behind the denoiser contract: the straight path's conversions, diffusers' flow-matching
scheduler, and the exact velocity field of a Gaussian."""
import dataclasses

import pytest
import safetensors.torch
import torch
from torch import nn

from diffrep_lib import denoisers, features, guidance, methods, recipes, samplers, zoo
from diffrep_lib.core import sampling
from diffrep_lib.core import flow_matching as fm
from diffrep_lib.errors import GridError, InputError
from diffrep_lib.models import MLPConfig


class ToyVelocity(nn.Module):
    """A fixed, non-trivial function of (x_t, 1000 t): enough to compare two implementations of one step."""

    def forward(self, x, tt):
        return torch.tanh(1.5 * x) * (tt / 1000).view(-1, 1, 1, 1) - 0.3 * x + 0.1


def test_the_straight_path_and_its_conversions_are_consistent():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    t = torch.tensor([0.05, 0.3, 0.7, 0.95])
    x_t, v, tb = fm.interpolate(x0, eps, t), fm.velocity(x0, eps), t.view(-1, 1, 1, 1)
    torch.testing.assert_close(fm.to_x0(v, x_t, tb), x0)
    torch.testing.assert_close(fm.to_eps(v, x_t, tb), eps)
    torch.testing.assert_close(fm.from_x0(x0, x_t, tb), v)
    sigma = fm.sigma_from_t(t)                       # x_t / (1 - t) is x0 + sigma eps, the VE scaling
    torch.testing.assert_close(x_t / (1 - tb), x0 + sigma.view(-1, 1, 1, 1) * eps)
    torch.testing.assert_close(fm.t_from_sigma(sigma), t)


def test_the_adapter_agrees_with_diffusers_flow_matching_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler
    sched = FlowMatchEulerDiscreteScheduler()
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(3, 1, 6, 6, generator=g), torch.randn(3, 1, 6, 6, generator=g)
    t_a, t_b = 0.8, 0.55
    sched.set_timesteps(sigmas=[t_a, t_b])
    x_t = sched.scale_noise(x0, sched.timesteps[:1], noise)             # diffusers' forward process
    torch.testing.assert_close(x_t, fm.interpolate(x0, noise, t_a))
    net = ToyVelocity()
    v = net(x_t, torch.full((3,), 1000 * t_a))
    expected = sched.step(v, sched.timesteps[0], x_t).prev_sample       # one Euler step in t
    D = fm.FlowDenoiser(net)
    sigmas = torch.tensor([fm.sigma_from_t(torch.tensor(t_a)), fm.sigma_from_t(torch.tensor(t_b))],
                          dtype=torch.float64)
    x_ve = samplers.sample_ddim(D, x_t / (1 - t_a), sigmas, span="partial")   # DDIM through the adapter
    torch.testing.assert_close(x_ve * (1 - t_b), expected, atol=1e-5, rtol=1e-5)
    x0_hat = D(x_t / (1 - t_a), sigmas[:1])                              # the adapter's clean-image estimate
    torch.testing.assert_close(x0_hat, x_t - t_a * v, atol=1e-5, rtol=1e-5)


def test_euler_on_the_exact_velocity_of_a_gaussian_reaches_it():
    mean, var = torch.tensor([[1.5, -0.5]]), torch.tensor([0.25, 1.0])
    D = denoisers.gaussian_mixture_denoiser(mean, torch.diag(var)[None], torch.ones(1))
    v = fm.velocity_field(D)
    g = torch.Generator().manual_seed(2)
    x = fm.T_MAX * torch.randn(20000, 2, generator=g, dtype=torch.float64)       # x_t at t_max: ~ t_max eps
    ts = fm.t_from_sigma(fm.sigma_grid(100))
    for t, t_next in zip(ts[:-1], ts[1:]):                                       # Euler in t on v
        x = x + (t_next - t) * v(x, t)
    torch.testing.assert_close(x.mean(0), mean[0].double(), atol=0.03, rtol=0)
    torch.testing.assert_close(x.var(0), var.double(), atol=0.04, rtol=0.04)
    # ... and those Euler steps are DDIM's on the VE grid (the same trajectory from the same noise)
    start = fm.T_MAX * torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = start.clone()
    for t, t_next in zip(ts[:-1], ts[1:]):
        y = y + (t_next - t) * v(y, t)
    ddim = samplers.sample_ddim(D, start / (1 - fm.T_MAX), fm.sigma_grid(100))
    torch.testing.assert_close(ddim, y, atol=1e-8, rtol=1e-6)


def test_flow_terms_regress_the_velocity_and_the_grid_is_uniform_in_t():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(6, 1, 4, 4, generator=g)
    t = torch.linspace(0.1, 0.9, 6)
    seen = {}

    class Recorder(nn.Module):
        def forward(self, x_t, tt):
            seen["x_t"], seen["tt"] = x_t, tt
            return torch.zeros_like(x_t)

    loss = fm.flow_terms(Recorder(), x0, generator=torch.Generator().manual_seed(5), t=t)["flow"]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(seen["x_t"], fm.interpolate(x0, eps, t))
    torch.testing.assert_close(seen["tt"], 1000 * t)
    torch.testing.assert_close(loss, (eps - x0).pow(2).flatten(1).mean(1))   # a zero network misses all of v
    grid = fm.sigma_grid(4, t_max=0.8)
    torch.testing.assert_close(fm.t_from_sigma(grid[:-1]), torch.tensor([0.8, 0.6, 0.4, 0.2], dtype=torch.float64))
    assert grid[-1] == 0 and samplers.check_grid(grid) is grid
    with pytest.raises(GridError, match="t_max"):
        fm.sigma_grid(4, t_max=1.0)
    with pytest.raises(InputError, match=r"times in \(0, 1\)"):
        fm.velocity_field(lambda x, s, c=None: x)(torch.zeros(2, 2), 1.0)


class AsVelocityNet(nn.Module):
    """A velocity field v(x_t, t, cond) as a network of the flow contract, net(x_t, 1000 t[, cond])."""

    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, x_t, tt, cond=None):
        return self.v(x_t, tt.double() / 1000, cond)


def test_every_sampler_and_guidance_run_on_the_adapter():
    means, var = torch.tensor([[2.0, 0.0], [-2.0, 0.0]]), torch.tensor([0.3, 0.3])
    covs = torch.diag(var).expand(2, 2, 2)
    D = denoisers.gaussian_mixture_denoiser(means, covs, torch.ones(2))
    flow = fm.FlowDenoiser(AsVelocityNet(fm.velocity_field(D)))
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    for sigma in (0.05, 1.0, 30.0):                        # velocity -> adapter is the denoiser it came from
        torch.testing.assert_close(flow(x * sigma, torch.tensor(sigma)), D(x * sigma, torch.tensor(sigma)))
    grid = fm.sigma_grid(60)
    start = grid[0] * torch.randn(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    for name, sample in samplers.SAMPLERS.items():
        out = sample(flow, start.clone(), grid, generator=torch.Generator().manual_seed(8))
        share = (out[:, 0] > 0).double().mean().item()     # both modes, in equal parts, at the right spread
        assert abs(share - 0.5) < 0.05 and abs(out[:, 0].abs().mean().item() - 2.0) < 0.1, name

    # classifier-free guidance through the adapter is guidance of the velocities
    comps = {0: D, 1: denoisers.gaussian_mixture_denoiser(means[:1], covs[:1], torch.ones(1)),
             2: denoisers.gaussian_mixture_denoiser(means[1:], covs[1:], torch.ones(1))}   # 0: the null id
    cond_d = lambda x, s, c: torch.stack([comps[int(k)](x[i:i + 1], s[i:i + 1]) for i, k in enumerate(c)])[:, 0]
    net = AsVelocityNet(fm.velocity_field(cond_d))
    guided = guidance.cfg(fm.FlowDenoiser(net), 3.0, null=0)
    xs, s = x[:4] * 2.0, torch.full((4,), 2.0, dtype=torch.float64)
    t = fm.t_from_sigma(s).view(-1, 1)
    x_t = xs / 3.0                                          # x / (1 + sigma)
    v_c, v_u = (net(x_t, 1000 * t[:, 0], torch.full((4,), k)) for k in (1, 0))
    expected = fm.to_x0(v_u + 3.0 * (v_c - v_u), x_t, t)
    torch.testing.assert_close(guided(xs, s, torch.ones(4, dtype=torch.long)), expected)


def test_couplings_and_straightness():
    g = torch.Generator().manual_seed(9)
    x0 = torch.randn(64, 1, 3, 3, generator=g)
    eps = torch.randn(64, 1, 3, 3, generator=g)
    paired = fm.ot_pairing(x0, eps)
    assert sorted(paired.flatten(1).sum(1).tolist()) == sorted(eps.flatten(1).sum(1).tolist())   # a permutation
    cost = lambda e: (x0 - e).pow(2).sum().item()
    assert cost(paired) < cost(eps) and all(cost(paired) <= cost(eps[torch.randperm(64, generator=g)]) + 1e-9
                                            for _ in range(20))
    shuffled = x0[torch.randperm(64, generator=g)]
    torch.testing.assert_close(fm.ot_pairing(x0, shuffled), x0)                # the exact match is found

    ts = torch.linspace(1, 0, 11)
    line = torch.stack([(1 - t) * x0 + t * eps for t in ts])
    assert fm.straightness(ts, line) < 1e-10                                    # a straight path at constant speed
    bent = line + torch.sin(torch.pi * ts).view(-1, 1, 1, 1, 1)                 # the same ends, bowed in between
    assert fm.straightness(ts, bent) > 1.0

    # the exact flow to one point is straight; to two separated modes its paths bend
    def flow_to(means):
        k = len(means)
        D = denoisers.gaussian_mixture_denoiser(means, 1e-4 * torch.eye(2).expand(k, 2, 2), torch.ones(k))
        return fm.FlowDenoiser(AsVelocityNet(fm.velocity_field(D)))
    start = fm.sigma_grid(1)[0] * torch.randn(500, 2, dtype=torch.float64, generator=g)
    s_one = fm.straightness(*fm.trajectory(flow_to(torch.tensor([[1.0, 1.0]])), start, fm.sigma_grid(40)))
    s_two = fm.straightness(*fm.trajectory(flow_to(torch.tensor([[3.0, 0.0], [-3.0, 0.0]])), start,
                                           fm.sigma_grid(40)))
    assert s_one < 1e-3 < 0.1 < s_two

    # reflow's pairs: the flow's own samples of the given noise, the same for the same noise
    noise = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    flow = flow_to(torch.tensor([[3.0, 0.0], [-3.0, 0.0]]))
    x0_a, eps_a = fm.reflow_pairs(flow, noise, 20)
    x0_b, _ = fm.reflow_pairs(flow, noise.clone(), 20)
    assert torch.equal(x0_a, x0_b) and torch.equal(eps_a, noise)
    assert ((x0_a[:, 0].abs() - 3).abs() < 0.1).float().mean() > 0.95         # each pair ends on a mode
    with pytest.raises(InputError, match="shaped like x0"):
        fm.flow_terms(AsVelocityNet(lambda x, t, c: x), x0, eps=eps[:3])


# --- the flow-matching method in the zoo (methods/flow.py)

FLOW_TOY = recipes.Recipe(name="flow_toy", model=MLPConfig(hidden=32, depth=2), task="flow", data="toy2d/8gaussians",
                          steps=200, batch_size=256, lr=5e-3, warmup=0, p_uncond=0.0, prediction="velocity")


def test_a_flow_recipe_trains_through_the_zoo_and_is_read_as_a_flow_denoiser(cache, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "flow_toy", {"full": FLOW_TOY})
    rec = zoo.record("flow_toy", "full")
    curve = rec["loss_curve"]["loss"]
    assert curve[-1] < curve[0]                                                           # it learnt
    untrained = methods.flow.held_out_flow_loss(zoo.untrained("flow_toy", "full"), FLOW_TOY)
    assert rec["metrics"]["test_flow_loss"] < untrained["test_flow_loss"]
    D = zoo.denoiser("flow_toy", "full")
    assert isinstance(D, fm.FlowDenoiser)
    x0, eps, t = torch.randn(8, 2), torch.randn(8, 2), torch.full((8,), 0.4)
    x_t = fm.interpolate(x0, eps, t)
    with torch.no_grad():
        v = D.net(x_t, 1000 * t)
        got = D(x_t / 0.6, fm.sigma_from_t(t))                 # the VE input of the same point
    assert torch.allclose(got, fm.to_x0(v, x_t, t[:, None]), atol=1e-5)
    net = zoo.get("flow_toy", "full")
    assert net.schedule_path == "straight"
    path = cache / "roundtrip.safetensors"                     # channels-last weights are stored contiguous
    zoo.store.atomic_save(net.state_dict(), path)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in safetensors.torch.load_file(str(path)).items())


class LabelsSeen(nn.Module):
    """Records the labels it is called with; predicts zero velocity."""

    null_label = 10

    def forward(self, x, tt, y=None):
        self.seen = y
        return torch.zeros_like(x)


def test_the_flow_method_drops_labels_to_the_null_id_at_the_recipe_rate():
    r = recipes.get("flow_unet_fmnist")
    net, x, y = LabelsSeen(), torch.randn(4000, 1, 2, 2), torch.arange(4000) % 10
    terms = methods.flow.flow_terms(net, x, y, recipe=r, null=10, generator=torch.Generator().manual_seed(0))
    dropped = (net.seen == 10).float().mean().item()
    assert abs(dropped - r.p_uncond) < 0.02 and torch.equal(net.seen[net.seen != 10], y[net.seen != 10])
    assert terms["flow"].shape == (4000,)
    methods.flow.flow_terms(net, x, y, recipe=r, null=None)                 # no null id: labels kept
    assert torch.equal(net.seen, y)


class Recorder(nn.Module):
    """Records the input and time it is called with; a layer to hook."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()

    def forward(self, x, tt):
        self.seen = (x.clone(), tt.clone())
        return self.layer(x)


def test_features_read_a_flow_network_on_its_straight_path_at_the_vp_steps_noise_level():
    abar = recipes.abar(recipes.get("unet_fmnist"))
    x, eps, t = torch.rand(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.tensor([0, 200, 900])
    vp = features.carry_schedule(Recorder(), abar)
    flow = features.carry_schedule(Recorder(), abar, path="straight")
    features.extract(vp, x, t, ["layer"], noise=eps)
    features.extract(flow, x, t, ["layer"], noise=eps)
    a = abar[t].float().view(-1, 1, 1, 1)
    x_vp = a.sqrt() * x + (1 - a).sqrt() * eps
    assert torch.allclose(vp.seen[0], x_vp, atol=1e-6) and torch.equal(vp.seen[1], t)
    assert torch.allclose(flow.seen[0], x_vp / (a.sqrt() + (1 - a).sqrt()), atol=1e-6)   # the same SNR, rescaled
    s = flow.seen[1] / 1000
    assert torch.allclose((1 - s) / s, (abar[t] / (1 - abar[t])).sqrt().float(), rtol=1e-4)
    D = fm.FlowDenoiser(Recorder())                   # a FlowDenoiser is read the same way, given the steps' names
    features.extract(D, x, t, ["layer"], noise=eps, abar=abar)
    assert torch.allclose(D.net.seen[0], flow.seen[0]) and torch.allclose(D.net.seen[1], flow.seen[1])
    with pytest.raises(InputError, match="abar"):
        features.extract(D, x, t, ["layer"], noise=eps)
    with pytest.raises(InputError, match="path"):
        features.carry_schedule(Recorder(), abar, path="curved")


def test_the_uniform_t_grid_is_rectified_flows_and_stays_inside_a_vp_models_range():
    D = fm.FlowDenoiser(ToyVelocity())
    assert torch.equal(sampling.sigma_grid(D, 4, "uniform_t"), fm.sigma_grid(4))
    V = denoisers.VPDenoiser(ToyVelocity(), recipes.abar(recipes.get("unet_fmnist")).float())
    g = sampling.sigma_grid(V, 4, "uniform_t")
    assert abs(g[0].item() - V.sigma_max) < 1e-3 * V.sigma_max and g[-1] == 0 and (g[:-1] > g[1:]).all()
    with pytest.raises(GridError, match="uniform_t"):
        sampling.sigma_grid(D, 4, "cosine")


REFLOW_TOY = recipes.Recipe(name="reflow_toy", model=MLPConfig(hidden=32, depth=2), task="reflow",
                            data="toy2d/8gaussians", steps=100, batch_size=256, lr=5e-3, warmup=0, p_uncond=0.0,
                            prediction="velocity", teacher="flow_toy", profile="full",
                            options=(("pairs", 512), ("pair_steps", 8)))
OT_TOY = recipes.Recipe(name="ot_toy", model=MLPConfig(hidden=32, depth=2), task="flow_ot", data="toy2d/8gaussians",
                        steps=100, batch_size=256, lr=5e-3, warmup=0, p_uncond=0.0, prediction="velocity")


def test_reflow_pairs_are_the_teachers_deterministic_and_training_starts_from_its_weights(cache, monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "flow_toy", {"full": FLOW_TOY})
    monkeypatch.setitem(recipes.RECIPES, "reflow_toy", {"full": REFLOW_TOY})
    r = recipes.get("reflow_toy", "full")
    x, y = methods.flow.pairs(r, 64, seed=3)
    assert y is None and x.shape == (64, 4)                             # [sample, noise] side by side
    assert torch.equal(x, methods.flow.pairs(r, 64, seed=3)[0])          # deterministic given the seed
    assert not torch.equal(x, methods.flow.pairs(r, 64, seed=4)[0])
    D = zoo.denoiser("flow_toy", "full")
    x0, eps = fm.reflow_pairs(D, x[:, 2:], 8, sampler=samplers.sample_dpmpp_2m, batch=10)
    assert torch.equal(eps, x[:, 2:]) and torch.allclose(x0, x[:, :2], atol=1e-5)       # unclipped: 2-D points
    assert x0.abs().max() > 1.5                                                          # (the modes lie at 2.8)
    teacher = zoo.get("flow_toy", "full").state_dict()
    start = zoo.build.build_model(r, for_training=True).state_dict()
    assert all(torch.equal(v, teacher[k]) for k, v in start.items())     # fine-tuned from the teacher
    longer = dataclasses.replace(FLOW_TOY, name="longer_toy", teacher="flow_toy", profile="full")
    start = zoo.build.build_model(longer, for_training=True).state_dict()    # flow matching continued
    assert all(torch.equal(v, teacher[k]) for k, v in start.items())
    fresh = zoo.build.build_model(FLOW_TOY, for_training=True).state_dict()  # no teacher: from scratch
    assert not all(torch.equal(v, teacher[k]) for k, v in fresh.items())
    rec = zoo.record("reflow_toy", "full")
    assert {"test_flow_loss", "test_reflow_loss"} <= set(rec["metrics"])
    assert zoo.get("reflow_toy", "full").schedule_path == "straight"
    assert isinstance(zoo.denoiser("reflow_toy", "full"), fm.FlowDenoiser)


def test_the_ot_method_regresses_the_velocity_of_ot_pairs(monkeypatch):
    net = AsVelocityNet(lambda x, t, c: torch.zeros_like(x))
    x = torch.randn(64, 2) * 0.1 + 3 * torch.tensor([1.0, 0.0]) * (torch.arange(64) % 2 * 2 - 1)[:, None]  # 2 modes
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    terms = methods.flow.ot_flow_terms(net, x, None, recipe=OT_TOY, generator=g1)
    eps = torch.randn(x.shape, generator=g2)
    paired = fm.ot_pairing(x, eps)
    assert torch.allclose(terms["flow"], (paired - x).pow(2).mean(1))   # zero velocity: the loss is |eps - x0|^2
    assert terms["flow"].mean() < (eps - x).pow(2).mean(1).mean()       # shorter pairs than independent ones


def test_a_cell_probe_is_the_grids_probe_on_a_chosen_cell():
    from diffrep_lib import activations, framework as fw, probes
    got = activations.cell_probe("unet_fmnist", "quick", "trained", cell=fw.cell(10, "mid.2"), sizes=(200, 100))
    x, y, xt, yt = activations.probe_split((200, 100), 0)
    net = zoo.get("unet_fmnist", "quick")
    vec = fw.feature_vectors(net, torch.cat([x, xt]), [10], ["mid.2"], seed=0, bf16=activations.BF16)
    vec = vec[fw.cell(10, "mid.2")]
    assert got["n_test"] == 100
    assert got["linear"] == probes.linear_probe(vec[:200], y, vec[200:], yt)
    assert got["knn"] == probes.knn_accuracy(vec[:200], y, vec[200:], yt)
    with pytest.raises(InputError, match="ddae_grid"):
        activations.cell_probe("unet_fmnist", "quick", "pixels", cell="pixels", sizes=(200, 100))


def test_a_model_trained_on_first_use_is_the_model_later_calls_load(cache, monkeypatch):
    quick = dataclasses.replace(FLOW_TOY, name="fresh_toy", steps=5, profile="full")
    monkeypatch.setitem(recipes.RECIPES, "fresh_toy", {"full": quick})
    fresh, again = zoo.get("fresh_toy", "full"), zoo.get("fresh_toy", "full")
    assert [p.requires_grad for p in fresh.parameters()] == [p.requires_grad for p in again.parameters()]
    assert all(p.requires_grad for p in fresh.parameters())        # trainable further, as a loaded model
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
