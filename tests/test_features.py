"""Feature extraction by forward hooks: every backbone, diffusers U-Nets built from configs, no lasting hooks."""
import pytest
import torch

from diffrep_lib import denoisers, features, schedules
from diffrep_lib.errors import InputError
from diffrep_lib.models import DiT, DiTConfig, UNet, UNetConfig, UViT, UViTConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear()).float()
NETS = {"unet": (lambda: UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)), ["down.1", "mid.2", "up.1"]),
        "dit": (lambda: DiT(DiTConfig(dim=32, depth=2, heads=2, zero_init=False)), ["blocks.0", "blocks.1"]),
        "uvit": (lambda: UViT(UViTConfig(dim=32, depth=3, heads=2)), ["in_blocks.0", "mid", "out_blocks.0"])}


def no_hooks(net):
    return all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("name", sorted(NETS))
def test_extract_on_every_backbone_matches_a_manual_forward_and_leaves_no_hooks(name):
    torch.manual_seed(0)
    make, layers = NETS[name]
    net = features.carry_schedule(make().eval(), ABAR)
    x, eps, t = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28), 25
    feats = features.extract(net, x, t, layers, noise=eps)
    assert list(feats) == layers and no_hooks(net)
    seen = {}
    modules = dict(net.named_modules())
    hooks = [modules[p].register_forward_hook(lambda m, a, o, p=p: seen.__setitem__(p, o)) for p in layers]
    with torch.no_grad():
        net(ABAR[t].sqrt() * x + (1 - ABAR[t]).sqrt() * eps, torch.full((3,), t))
    for h in hooks:
        h.remove()
    for p in layers:
        assert torch.allclose(feats[p], seen[p].float())


def test_token_features_become_maps_and_pool():
    torch.manual_seed(0)
    net = features.carry_schedule(UViT(UViTConfig(dim=32, depth=3, heads=2)), ABAR)
    tokens = features.extract(net, torch.randn(2, 1, 28, 28), 10, ["mid"])["mid"]
    assert tokens.shape == (2, 51, 32)
    fmap = features.as_map(tokens, extras=net.extras)
    assert fmap.shape == (2, 32, 7, 7) and torch.equal(fmap[:, :, 0, 1], tokens[:, 3])
    assert features.pool(fmap).shape == (2, 32) and features.pool(fmap, 2).shape == (2, 128)
    assert features.upsample(fmap, (28, 28)).shape == (2, 32, 28, 28)
    with pytest.raises(ValueError, match="square grid"):
        features.as_map(tokens)                                # the two extra tokens were not dropped


def test_ensemble_averages_noise_draws_and_a_denoiser_brings_its_schedule():
    torch.manual_seed(0)
    net = features.carry_schedule(DiT(DiTConfig(dim=32, depth=2, heads=2, zero_init=False)).eval(), ABAR)
    x, noise = torch.randn(2, 1, 28, 28), torch.randn(3, 2, 1, 28, 28)
    avg = features.extract(net, x, 100, ["blocks.1"], noise=noise, ensemble=3)["blocks.1"]
    single = [features.extract(net, x, 100, ["blocks.1"], noise=n)["blocks.1"] for n in noise]
    assert torch.allclose(avg, sum(single) / 3, atol=1e-6)
    D = denoisers.VPDenoiser(net, ABAR)
    via_denoiser = features.extract(D, x, 100, ["blocks.1"], noise=noise[0])["blocks.1"]
    assert torch.allclose(via_denoiser, single[0], atol=1e-5)


def test_clear_errors_for_unknown_modules_containers_and_bad_noise():
    net = features.carry_schedule(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)), ABAR)
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(InputError, match="no such module"):
        features.extract(net, x, 5, ["decoder.9"])
    with pytest.raises(InputError, match="not called"):
        features.extract(net, x, 5, ["mid"])                    # a ModuleList: hook mid.0, mid.1 or mid.2
    assert no_hooks(net)
    with pytest.raises(InputError, match="noise: .*pass noise of shape"):
        features.extract(net, x, 5, ["up.0"], noise=torch.randn(2, 1, 28, 28))


def test_diffusers_unets_from_configs():
    """The same call on diffusers' UNet2DModel and UNet2DConditionModel (random weights, no download): what
    a Colab reader runs on a real Stable Diffusion U-Net, with its text embedding as forward_kwargs."""
    from diffusers import UNet2DConditionModel, UNet2DModel
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    f = features.extract(unet, torch.randn(2, 1, 16, 16), 50, ["down_blocks.1", "mid_block", "up_blocks.0"],
                         abar=ABAR)
    assert f["down_blocks.1"].shape == (2, 16, 8, 8) and f["mid_block"].shape == (2, 16, 8, 8)
    assert f["up_blocks.0"].shape == (2, 16, 16, 16) and no_hooks(unet)
    sd_like = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                   layers_per_block=1, norm_num_groups=4, cross_attention_dim=12,
                                   attention_head_dim=4,
                                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    text = torch.randn(2, 5, 12)
    f = features.extract(sd_like, torch.randn(2, 4, 8, 8), 261, ["up_blocks.1"],
                         abar=ABAR,
                         forward_kwargs={"encoder_hidden_states": text})
    assert f["up_blocks.1"].shape == (2, 8, 8, 8) and no_hooks(sd_like)


def test_hooks_are_removed_when_the_forward_raises_and_features_repeat_for_a_seeded_generator():
    torch.manual_seed(0)
    net = features.carry_schedule(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2, num_classes=3)).eval(), ABAR)
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(TypeError):                                  # the forward itself fails, hooks in place
        features.extract(net, x, 5, ["down.1", "up.1"], forward_kwargs={"no_such_argument": 1})
    assert no_hooks(net)
    with pytest.raises(InputError, match="y: got .*labels run from 0 to 2"):   # no label 99: refused before
        features.extract(net, x, 5, ["down.1", "up.1"], y=torch.tensor([0, 99]))
    assert no_hooks(net)
    draw = lambda: features.extract(net, x, 50, ["up.1"], generator=torch.Generator().manual_seed(3))["up.1"]
    assert torch.equal(draw(), draw())
    other = features.extract(net, x, 50, ["up.1"], generator=torch.Generator().manual_seed(4))["up.1"]
    assert not torch.allclose(draw(), other)


def test_a_read_stops_after_its_last_layer_and_forward_until_returns_what_ran():
    from diffrep_lib.support.hooks import forward_until
    torch.manual_seed(0)
    net = features.carry_schedule(UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)).eval(), ABAR)
    calls = []
    net.out.register_forward_hook(lambda m, a, o: calls.append("out"))
    net.up[0].register_forward_hook(lambda m, a, o: calls.append("up.0"))
    x = torch.randn(2, 1, 28, 28)
    features.extract(net, x, 5, ["down.1", "mid.2"])                # the decoder never runs
    assert calls == []
    features.extract(net, x, 5, ["up.2"])                          # the last level: all but the output layer
    assert calls == ["up.0"]
    with torch.no_grad(), forward_until([net.mid[2]]) as run:
        assert run(net, x, torch.full((2,), 5)) is None             # cut short, every pass
        assert run(net, x, torch.full((2,), 5)) is None
    with torch.no_grad(), forward_until([net.out]) as run:
        assert run(net, x, torch.full((2,), 5)) is None
        assert run(lambda: 7) == 7                                  # nothing awaited ran: fn's result
    net.out._forward_hooks.clear()
    net.up[0]._forward_hooks.clear()
    assert no_hooks(net)
