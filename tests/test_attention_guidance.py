"""Guidance from self-attention (core/attention_guidance.py). SAG: the attention the U-Net exposes is the attention it
uses, the mask selects exactly the keys that receive more than the average attention, the wrapper is the plain
denoiser at scale 0 and whenever nothing is masked, and it makes one extra network call per step. PAG: identity
attention is attention with every off-diagonal logit masked, the guidance is one doubled call whose unperturbed half
and whose blocks before the perturbed layer are untouched."""
import pytest
import torch

from diffrep_lib.core import attention_guidance as ag
from diffrep_lib.core import denoisers, schedules
from diffrep_lib.errors import InputError
from diffrep_lib.models import UNet, UNetConfig
from diffrep_lib.support.hooks import recording as dr_hooks

SMALL = UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, num_classes=None)


def _denoiser(seed=0):
    torch.manual_seed(seed)
    net = UNet(SMALL).eval()
    with torch.no_grad():                                   # no zero-initialised layer: every path matters
        for p in net.parameters():
            p.normal_(0, 0.15)
    return denoisers.VPDenoiser(net, schedules.alphas_cumprod(schedules.SCHEDULES["linear"](1000)))


def test_probs_are_the_attention_the_layer_applies():
    D = _denoiser()
    layer = D.net.get_submodule("mid.1")
    x = torch.randn(2, 16, 7, 7)
    p = layer.probs(x)
    assert p.shape == (2, 2, 49, 49) and torch.allclose(p.sum(-1), torch.ones(2, 2, 49))
    n, c, h, w = x.shape
    v = layer.qkv(layer.norm(x)).reshape(n, 3, 2, c // 2, h * w)[:, 2]            # (N, heads, d, HW)
    by_hand = x + layer.proj((p @ v.transpose(-1, -2)).transpose(-1, -2).reshape(n, c, h, w))
    assert torch.allclose(layer(x), by_hand, atol=1e-5)


def test_the_mask_selects_exactly_the_keys_above_average_attention():
    torch.manual_seed(0)
    probs = torch.softmax(3 * torch.randn(3, 4, 49, 49), dim=-1)
    received = probs.mean(1).sum(1)                                               # (N, 49), mean 1 over keys
    assert torch.allclose(received.mean(1), torch.ones(3))
    selected = ag.salient(probs)
    assert selected.shape == (3, 7, 7)
    assert torch.equal(selected.flatten(1), received > 1)
    assert 0 < selected.sum() < selected.numel()
    other = ag.random_like(selected, torch.Generator().manual_seed(1))
    assert torch.equal(other.flatten(1).sum(1), selected.flatten(1).sum(1)) and not torch.equal(other, selected)


def test_blur_keeps_constants_and_smooths():
    x = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(ag.gaussian_blur(x, 1.0), x, atol=1e-6)
    spike = torch.zeros(1, 1, 28, 28)
    spike[0, 0, 14, 14] = 1.0
    out = ag.gaussian_blur(spike, 1.0)
    assert torch.isclose(out.sum(), torch.tensor(1.0), atol=1e-5) and out.max() < 0.2


def test_scale_zero_and_an_empty_mask_give_the_plain_denoiser():
    D = _denoiser()
    layer = D.net.get_submodule("mid.1")
    x, sigma = 2 * torch.randn(4, 1, 28, 28), torch.full((4,), 2.0)
    plain = D(x, sigma)
    assert torch.equal(ag.self_attention_guidance(D, layer, 0.0)(x, sigma), plain)
    nothing = ag.self_attention_guidance(D, layer, 0.7, threshold=1e9)            # no key above the threshold
    assert torch.allclose(nothing(x, sigma), plain, atol=1e-6)
    guided = ag.self_attention_guidance(D, layer, 0.7)(x, sigma)
    assert not torch.allclose(guided, plain, atol=1e-4)


def test_guidance_is_linear_in_the_scale_and_calls_the_network_twice():
    D = _denoiser()
    layer = D.net.get_submodule("mid.1")
    calls = []
    counted = lambda x, sigma, cond=None: (calls.append(len(x)), D(x, sigma, cond))[1]
    x, sigma = 2 * torch.randn(3, 1, 28, 28), torch.full((3,), 1.5)
    plain = D(x, sigma)
    one = ag.self_attention_guidance(counted, layer, 1.0)(x, sigma)
    assert calls == [3, 3]                                  # the prediction, then the degraded input's
    two = ag.self_attention_guidance(D, layer, 2.0)(x, sigma)
    assert torch.allclose(two - plain, 2 * (one - plain), atol=1e-5)
    everywhere = ag.self_attention_guidance(D, layer, 1.0, mask="everywhere")(x, sigma)
    assert not torch.allclose(everywhere, one, atol=1e-4)


def test_bad_arguments_are_named():
    D = _denoiser()
    layer = D.net.get_submodule("mid.1")
    with pytest.raises(InputError, match="attention"):
        ag.self_attention_guidance(D, D.net.get_submodule("mid.0"), 1.0)
    with pytest.raises(InputError, match="mask"):
        ag.self_attention_guidance(D, layer, 1.0, mask="edges")
    with pytest.raises(InputError, match="blur_sigma"):
        ag.self_attention_guidance(D, layer, 1.0, blur_sigma=0)


def test_identity_attention_is_attention_with_every_off_diagonal_logit_removed():
    """PAG's official code masks every off-diagonal attention logit to -inf; the layers' identity() is that."""
    D = _denoiser()
    layer = D.net.get_submodule("mid.1")
    x = torch.randn(2, 16, 7, 7)
    n, c, h, w = x.shape
    q, k, v = layer.qkv(layer.norm(x)).reshape(n, 3, 2, c // 2, h * w).unbind(1)
    mask = torch.full((h * w, h * w), float("-inf")).fill_diagonal_(0.0)
    out = torch.nn.functional.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                                           v.transpose(-1, -2), attn_mask=mask)
    by_hand = x + layer.proj(out.transpose(-1, -2).reshape(n, c, h, w))
    assert torch.allclose(layer.identity(x), by_hand, atol=1e-5)
    from diffrep_lib.models.attention import SelfAttention
    torch.manual_seed(1)
    attn = SelfAttention(16, 4)
    tokens = torch.randn(2, 9, 16)
    q, k, v = attn.qkv(tokens).reshape(2, 9, 3, 4, 4).permute(2, 0, 3, 1, 4)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.full((9, 9), float("-inf")).fill_diagonal_(0.0))
    assert torch.allclose(attn.identity(tokens), attn.proj(out.transpose(1, 2).reshape(2, 9, 16)), atol=1e-5)


def test_pag_is_one_doubled_call_whose_first_half_is_the_plain_prediction():
    D = _denoiser()
    layers = [D.net.get_submodule("mid.1")]
    x, sigma = 2 * torch.randn(3, 1, 28, 28), torch.full((3,), 1.5)
    plain = D(x, sigma)
    assert torch.equal(ag.perturbed_attention_guidance(D, layers, 0.0)(x, sigma), plain)
    calls = []
    counted = lambda x, sigma, cond=None: (calls.append(len(x)), D(x, sigma, cond))[1]
    blocks = {"down.2": D.net.get_submodule("down.2"), "out": D.net.get_submodule("out")}
    with dr_hooks(blocks) as seen:
        one = ag.perturbed_attention_guidance(counted, layers, 1.0)(x, sigma)
    assert calls == [6]                                     # x and its perturbed copy in one batch
    with dr_hooks(blocks) as unperturbed:                   # the same doubled batch, nothing perturbed
        D(torch.cat([x, x]), torch.cat([sigma, sigma]))
    assert torch.equal(seen["down.2"], unperturbed["down.2"])       # blocks before the layer: bit-identical
    assert torch.equal(seen["out"][:3], unperturbed["out"][:3])     # the unperturbed half: bit-identical
    assert not torch.allclose(seen["out"][3:], unperturbed["out"][3:], atol=1e-4)   # the perturbed half differs
    two = ag.perturbed_attention_guidance(D, layers, 2.0)(x, sigma)
    assert torch.allclose(two - plain, 2 * (one - plain), atol=1e-5)
    with pytest.raises(InputError, match="layers"):
        ag.perturbed_attention_guidance(D, [D.net.get_submodule("mid.0")], 1.0)


def test_pag_with_cfg_is_one_tripled_call_and_reduces_to_cfg_and_to_pag():
    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, num_classes=10)).eval()
    with torch.no_grad():                                   # no zero-initialised layer: every path matters
        for p in net.parameters():
            p.normal_(0, 0.15)
    D = denoisers.VPDenoiser(net, schedules.alphas_cumprod(schedules.SCHEDULES["linear"](1000)))
    layers = [D.net.get_submodule("mid.1")]
    x, sigma, y = 2 * torch.randn(3, 1, 28, 28), torch.full((3,), 1.5), torch.tensor([0, 4, 9])
    calls = []
    counted = lambda x, sigma, cond=None: (calls.append(len(x)), D(x, sigma, cond))[1]
    both = ag.perturbed_attention_cfg(counted, layers, 1.5, 2.0, null=10)(x, sigma, y)
    assert calls == [9]                                     # conditional, null, conditional perturbed: one batch
    cfg_only = ag.perturbed_attention_cfg(D, layers, 0.0, 2.0, null=10)(x, sigma, y)
    x0_c, x0_u = D(x, sigma, y), D(x, sigma, torch.full_like(y, 10))
    assert torch.allclose(cfg_only, x0_u + 2.0 * (x0_c - x0_u), atol=1e-5)
    pag_only = ag.perturbed_attention_guidance(D, layers, 1.5)(x, sigma, y)
    cfg_one = ag.perturbed_attention_cfg(D, layers, 1.5, 1.0, null=10)(x, sigma, y)
    assert torch.allclose(cfg_one, pag_only, atol=1e-5)    # w = 1: PAG on the conditional prediction
    assert torch.allclose(both - cfg_only, pag_only - x0_c, atol=1e-5)   # the same PAG term, added to CFG
    with pytest.raises(InputError, match="cond"):
        ag.perturbed_attention_cfg(D, layers, 1.0, 2.0, null=10)(x, sigma)
