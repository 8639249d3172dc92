"""Diffusion self-guidance: the token U-Net's cross-attention, the map properties, the guided denoiser's sign, and
the measurement of objects in generated scenes (ch. 11)."""
import pytest
import torch

from diffrep_lib.core import denoisers, schedules, self_guidance as sg
from diffrep_lib.errors import InputError
from diffrep_lib.experiments.scene_edits import object_geometry, object_masks
from diffrep_lib.methods import scene_tokens
from diffrep_lib.models import TokenUNet, TokenUNetConfig

SMALL = TokenUNetConfig(in_channels=3, channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, context_dim=16)


def _denoiser(seed=0):
    torch.manual_seed(seed)
    net = TokenUNet(SMALL).eval()
    with torch.no_grad():                                   # no zero-initialised layer: every path matters
        for p in net.parameters():
            p.normal_(0, 0.15)
    return denoisers.VPDenoiser(net, schedules.alphas_cumprod(schedules.SCHEDULES["linear"](1000)))


def _tokens(n=3):
    return scene_tokens.tokens(scene_tokens.scenes("test")[:n])


def _recorded_call():
    """A small token U-Net called once through the recorder: (D, layers, c, x, sigma, reference maps, x0_hat)."""
    D = _denoiser()
    layers = list(D.net.cross_layers().values())
    c = _tokens().flatten(1)
    x, sigma = 3 * torch.randn(3, 3, 32, 32), torch.full((3,), 3.0)
    rec, ref = sg.recorder(D, layers)
    return D, layers, c, x, sigma, ref, rec(x, sigma, c)


def test_cross_attention_probs_are_what_the_layer_applies():
    D = _denoiser()
    layer = D.net.get_submodule("down.1.cross")
    x, ctx = torch.randn(2, 16, 16, 16), torch.randn(2, 2, 16)
    p = layer.probs(x, ctx)
    assert p.shape == (2, 2, 256, 2) and torch.allclose(p.sum(-1), torch.ones(2, 2, 256))
    _, _, v = layer._qkv(x, ctx)
    manual = (p @ v).transpose(-1, -2).reshape(2, 16, 16, 16)
    assert torch.allclose(layer(x, ctx), x + layer.proj(manual), atol=1e-5)
    assert list(D.net.cross_layers()) == ["down.1.cross", "down.2.cross", "up.0.cross", "up.1.cross"]


def test_a_zero_condition_is_the_learned_null_and_tokens_matter():
    D = _denoiser()
    c = _tokens().flatten(1)
    x, sigma = torch.randn(3, 3, 32, 32), torch.full((3,), 2.0)
    assert torch.equal(D(x, sigma, torch.zeros_like(c)), D(x, sigma, None))
    assert not torch.allclose(D(x, sigma, c), D(x, sigma, None), atol=1e-4)
    with pytest.raises(InputError, match="cond"):
        D(x, sigma, c[:, :7])


def test_tokens_state_class_and_colours_of_one_object_scenes():
    s = scene_tokens.scenes("test")[:50]
    t = scene_tokens.tokens(s)
    assert t.shape == (50, 2, 7)
    assert torch.equal(t[:, 0, :4].argmax(1), s.shape_class[:, 0]) and (t[:, 1, :4] == 0).all()
    assert (t[:, :, 4:] > 0.1).all()                        # never the zero (null) vector
    # the measurement finds the true object from the tokens' colours alone
    found, true = object_masks(s.images, t), s.masks > 0
    iou = (found & true).sum((1, 2)).float() / (found | true).sum((1, 2)).float()
    assert iou.min() > 0.9
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    centre = torch.stack([(true * xs).sum((1, 2)), (true * ys).sum((1, 2))], 1) / true.sum((1, 2))[:, None]
    assert (object_geometry(s.images, t)["centre"] - centre).abs().max() < 0.5


def test_centroid_and_size_of_simple_maps():
    m = torch.zeros(1, 2, 8, 8)
    m[0, 0, 2, 5] = 1.0                                    # row 2, column 5
    m[0, 1, :, :4] = 1.0                                   # the left half
    c = sg.centroid(m)
    assert torch.allclose(c[0, 0], torch.tensor([5.5 / 8, 2.5 / 8]))
    assert torch.allclose(c[0, 1], torch.tensor([2.0 / 8, 0.5]))
    assert torch.allclose(sg.size(m)[0, 1], torch.tensor(0.5), atol=0.01)
    probs = torch.rand(1, 3, 16, 2).softmax(-1)             # 3 heads over a 4 x 4 grid, two tokens
    a = sg.attention_maps([probs], 8)
    assert a.shape == (1, 2, 8, 8)
    assert torch.allclose(sg.attention_maps([probs], 4)[0, 0].flatten(), probs.mean(1)[0, :, 0])


def test_guidance_moves_x_down_the_energy_and_is_plain_at_scale_zero():
    D, layers, c, x, sigma, ref, plain = _recorded_call()
    assert torch.equal(plain, D(x, sigma, c)) and ref[0].shape == (3, 2, 16, 16)
    energy = sg.move_energy(ref, 0, (0.2, 0.0))
    assert torch.equal(sg.self_guidance(D, layers, energy, 0.0)(x, sigma, c), plain)
    step = sg.self_guidance(D, layers, energy, 1.0)(x, sigma, c) - plain
    assert step.abs().max() > 0

    def energy_at(z):
        _, maps = sg._maps_of_call(D, layers, z, sigma, c, 16)
        return energy(maps, 0)

    eta = 1e-3 / step.abs().max()
    assert (energy_at(x + eta * step) < energy_at(x)).all()   # the step points down the energy
    late = sg.self_guidance(D, layers, energy, 1.0, sigma_min=5.0)(x, sigma, c)
    assert torch.equal(late, plain)                           # below sigma_min: left plain


def test_bad_arguments_are_named():
    D = _denoiser()
    with pytest.raises(InputError, match="layers"):
        sg.self_guidance(D, [D.net.get_submodule("mid.1")], lambda m, i: m.sum(), 1.0)
    with pytest.raises(InputError, match="scale"):
        sg.self_guidance(D, list(D.net.cross_layers().values()), lambda m, i: m.sum(), float("nan"))


def test_shape_kept_is_one_for_a_moved_object_and_low_for_another():
    from diffrep_lib.experiments.scene_edits import shape_kept
    s = scene_tokens.scenes("test")[:4]
    t = scene_tokens.tokens(s)
    bg = t[:, 1, 4:, None, None] * 2 - 1
    x = torch.where((s.masks > 0)[:, None], s.images, bg.expand_as(s.images))   # noiseless copies
    moved = torch.where(x.roll(3, -1) != bg, x.roll(3, -1), bg)               # 3 px right (wrapping is rare)
    assert (shape_kept(x, moved, t) > 0.9).all()
    assert (shape_kept(x, x.flip(0), t) < 0.9).all()                          # another scene's object


def test_a_control_energy_can_push_exactly_as_hard_as_the_edit():
    D, layers, c, x, sigma, ref, plain = _recorded_call()
    edit = sg.move_energy(ref, 0, (0.2, 0.0))
    control = sg.move_energy(ref, 0, (0.2, 0.0), scramble=0)
    step = lambda e, **kw: (sg.self_guidance(D, layers, e, 1e4, **kw)(x, sigma, c) - plain).flatten(1)
    matched = step(control, norm_like=edit)
    assert torch.allclose(matched.norm(dim=1), step(edit).norm(dim=1), rtol=1e-3)
    free = step(control)
    cos = (matched * free).sum(1) / (matched.norm(dim=1) * free.norm(dim=1))
    assert torch.allclose(cos, torch.ones(3), atol=1e-4)        # rescaled, not turned
