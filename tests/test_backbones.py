"""Backbone properties on tiny shapes: adaLN-Zero identity at initialisation, conditioning, shared contract."""
import pytest
import torch

from diffrep_lib import costs, denoisers, losses, schedules, training
from diffrep_lib.models import DiT, DiTConfig, UNet, UNetConfig, UViT, UViTConfig

SMALL_DIT = DiTConfig(dim=32, depth=2, heads=2)
SMALL_UVIT = UViTConfig(dim=32, depth=3, heads=2)


def test_adaln_zero_dit_outputs_exactly_zero_and_every_block_is_the_identity_at_init():
    torch.manual_seed(0)
    net = DiT(SMALL_DIT)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([1.0, 500.0, 999.0]), torch.tensor([0, 5, 10])
    assert torch.equal(net(x, t, y), torch.zeros_like(x))
    h = torch.randn(3, 49, 32)
    c = net.time_embed(t) + net.label_embed(y)
    for block in net.blocks:
        assert torch.equal(block(h, c), h)


def test_ordinary_initialisation_is_not_the_identity():
    torch.manual_seed(0)
    net = DiT(DiTConfig(dim=32, depth=2, heads=2, zero_init=False))
    assert net(torch.randn(2, 1, 28, 28), torch.tensor([10.0, 20.0])).abs().max() > 0


def test_null_label_is_in_the_table_and_the_label_matters_after_training_steps():
    """With adaLN-Zero the first step can only move the zero output layer (every other gradient passes through
    it and is zero), so the label reaches the output from the second step on."""
    torch.manual_seed(0)
    net = DiT(SMALL_DIT)
    assert net.label_embed.table.num_embeddings == 11 and net.null_label == 10
    abar = schedules.alphas_cumprod(schedules.betas_linear())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x0, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([300.0, 300.0])
    differs = []
    for _ in range(2):
        loss = losses.denoising_terms(net, x0, y, abar=abar, prediction="eps")["denoise"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            differs.append((net(x, t, torch.tensor([1, 1])) - net(x, t, torch.tensor([2, 2]))).abs().max().item())
    assert differs[0] == 0.0 and differs[1] > 1e-7


BACKBONES = {"unet": lambda: UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)),
             "dit": lambda: DiT(SMALL_DIT), "uvit": lambda: UViT(SMALL_UVIT)}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_share_one_contract(name):
    torch.manual_seed(0)
    net = BACKBONES[name]()
    abar = schedules.alphas_cumprod(schedules.betas_linear())
    D = denoisers.VPDenoiser(net, abar)
    x, sigma = torch.randn(4, 1, 28, 28), torch.full((4,), 3.0)
    assert D(x, sigma, torch.tensor([0, 1, 2, 10])).shape == x.shape
    assert net(x, torch.full((4,), 7.0)).shape == x.shape          # no label: the null label


def test_sincos_positions_are_fixed_and_distinct():
    net = DiT(SMALL_DIT)
    pos = net.pos[0]
    assert not pos.requires_grad and pos.shape == (49, 32)
    assert torch.cdist(pos, pos).add(torch.eye(49) * 10).min() > 0.1


@pytest.mark.parametrize("name,paths", [("unet", ["down.0", "down.2", "mid", "up.0", "up.2", "out"]),
                                        ("dit", ["patch", "blocks.0", "blocks.1", "final"]),
                                        ("uvit", ["patch", "in_blocks.0", "mid", "out_blocks.0", "final"])])
def test_blocks_are_addressable_by_stable_names(name, paths):
    modules = dict(BACKBONES[name]().named_modules())
    assert all(p in modules for p in paths)


@pytest.mark.parametrize("name", ["dit", "uvit"])
def test_token_backbones_null_label_and_label_effect(name):
    torch.manual_seed(0)
    net = BACKBONES[name]()
    assert net.label_embed.table.num_embeddings == 11 and net.null_label == 10
    if name == "uvit":                     # no zero initialisation: the label token acts from the start
        x, t = torch.randn(2, 1, 28, 28), torch.tensor([300.0, 300.0])
        assert (net(x, t, torch.tensor([1, 1])) - net(x, t, torch.tensor([2, 2]))).abs().max() > 1e-6


def test_uvit_long_skips_connect_in_blocks_to_out_blocks_in_reverse():
    """Out-block i fuses its input with the output of in-block (half - 1 - i); the ablation has no skips."""
    torch.manual_seed(0)
    cfg = UViTConfig(dim=32, depth=5, heads=2)
    with_skips, without = UViT(cfg), UViT(UViTConfig(dim=32, depth=5, heads=2, long_skips=False))
    assert all(b.skip is not None for b in with_skips.out_blocks) and all(b.skip is None for b in without.out_blocks)
    assert sum(p.numel() for p in with_skips.parameters()) - sum(p.numel() for p in without.parameters()) \
        == 2 * (2 * 32 * 32 + 32)
    skip_in, in_out = {}, {}
    hooks = [with_skips.out_blocks[i].register_forward_pre_hook(lambda m, a, i=i: skip_in.__setitem__(i, a[1]))
             for i in range(2)]
    hooks += [with_skips.in_blocks[i].register_forward_hook(lambda m, a, o, i=i: in_out.__setitem__(i, o))
              for i in range(2)]
    with_skips(torch.randn(2, 1, 28, 28), torch.tensor([5.0, 6.0]))
    for h in hooks:
        h.remove()
    assert skip_in[0] is in_out[1] and skip_in[1] is in_out[0]
    assert in_out[0].shape == (2, 2 + 49, 32)                       # time, label and 49 patch tokens
    with pytest.raises(ValueError, match="odd"):
        UViT(UViTConfig(depth=4))


def test_flop_count_of_a_dit_block_matches_the_analytic_count():
    """torch's FlopCounterMode misses the CPU attention kernel; costs.count_flops adds it. Exact agreement."""
    torch.manual_seed(0)
    net = DiT(DiTConfig(dim=64, depth=1, heads=4))
    c = net.time_embed(torch.tensor([5.0]))
    counted, per_module = costs.count_flops(net.blocks[0], torch.zeros(1, 49, 64), c)
    assert counted == costs.dit_block_flops(49, 64)
    assert per_module["Block.attn"] > per_module["Block.attn.qkv"] + per_module["Block.attn.proj"]


def test_training_throughput_reports_a_step_time_and_flops():
    from diffrep_lib import recipes
    r = recipes.get("dit_fmnist")
    b = costs.training_throughput(DiT(SMALL_DIT), r, torch.randn(4, 1, 28, 28), torch.arange(4), steps=2, warmup=0)
    assert b["s_per_step"] > 0 and b["img_per_s"] == pytest.approx(4 / b["s_per_step"])
    assert b["flops_per_step"] > 3 * costs.forward_flops(DiT(SMALL_DIT)) * 4 * 0.9   # forward + backward


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_architecture_trace_follows_the_forward_pass_and_removes_its_hooks(name):
    from diffrep_lib import architecture
    net = BACKBONES[name]()
    lay, shapes = architecture.layout(net), architecture.trace(net)
    assert list(shapes) == [label for label, _ in lay.blocks]          # every block seen, in forward order
    assert all(not m._forward_hooks for m in net.modules())
    for a, b in lay.skips:                                               # a skip joins equal shapes
        assert shapes[a] == shapes[b]
    with pytest.raises(TypeError, match="no layout"):
        architecture.layout(torch.nn.Linear(2, 2))


def test_mean_loss_windows_a_logged_curve():
    curve = {"step": [50, 100, 150, 200], "loss": [4.0, 3.0, 2.0, 1.0]}
    assert training.mean_loss(curve) == 2.5
    assert training.mean_loss(curve, start=100) == 1.5 and training.mean_loss(curve, stop=100) == 3.5
    with pytest.raises(ValueError, match="no logged loss"):
        training.mean_loss(curve, start=200)
