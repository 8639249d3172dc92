"""Representation-conditioned generation (models/rep_unet.py, models/res_mlp.py, methods/rcg.py): the zero vector is
the null condition and classifier-free guidance works on vectors, representations are standardised, condition
dropout drops whole vectors, and the sample-set entry names what it cannot take."""
import pytest
import torch

from diffrep_lib.core import denoisers, guidance, schedules
from diffrep_lib.errors import InputError
from diffrep_lib.experiments import rcg_sampling
from diffrep_lib.methods import rcg
from diffrep_lib.models import RepUNet, RepUNetConfig, ResMLP, ResMLPConfig

SMALL = RepUNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, rep_dim=6)
ABAR = schedules.alphas_cumprod(schedules.SCHEDULES["linear"](1000))


def _net():
    torch.manual_seed(0)
    net = RepUNet(SMALL).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.15)
    return net


def test_the_zero_vector_is_the_null_condition():
    net = _net()
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([10, 200, 700])
    reps = rcg.standardise(torch.randn(3, 6))
    assert torch.equal(net(x, t), net(x, t, torch.zeros(3, 6)))
    assert not torch.allclose(net(x, t, reps), net(x, t), atol=1e-4)
    mixed = torch.cat([reps[:1], torch.zeros(2, 6)])           # row by row: one conditioned, two not
    out = net(x, t, mixed)
    assert torch.allclose(out[:1], net(x[:1], t[:1], reps[:1]), atol=1e-5)
    assert torch.allclose(out[1:], net(x[1:], t[1:]), atol=1e-5)


def test_classifier_free_guidance_on_vectors():
    D = denoisers.VPDenoiser(_net(), ABAR)
    x, sigma, reps = torch.randn(2, 1, 28, 28), torch.full((2,), 1.0), rcg.standardise(torch.randn(2, 6))
    cond, uncond = D(x, sigma, reps), D(x, sigma, torch.zeros(2, 6))
    assert torch.allclose(guidance.cfg(D, 0.0, 0)(x, sigma, reps), uncond, atol=1e-5)
    assert torch.allclose(guidance.cfg(D, 2.0, 0)(x, sigma, reps), uncond + 2 * (cond - uncond), atol=1e-4)
    with pytest.raises(InputError, match="condition vector"):
        D(x, sigma, torch.tensor([1, 2]))                       # a label where a vector belongs


def test_representations_are_standardised_and_dropped_whole():
    z = rcg.standardise(torch.rand(5, 128) * 3 + 1)
    assert torch.allclose(z.mean(1), torch.zeros(5), atol=1e-5) and torch.allclose(z.std(1), torch.ones(5))
    assert (z != 0).any(1).all()                                # never the null vector
    g = torch.Generator().manual_seed(0)
    dropped = rcg.drop_rows(z.repeat(200, 1), 0.3, g)
    gone = (dropped == 0).all(1)
    assert ((dropped == 0) == gone[:, None]).all()              # a vector is kept or dropped as a whole
    assert 0.2 < gone.float().mean() < 0.4
    assert torch.equal(rcg.drop_rows(z, 0.0), z)


def test_the_rdm_network_starts_at_zero_and_keeps_shapes():
    net = ResMLP(ResMLPConfig(dim=6, width=16, blocks=2))
    x = torch.randn(4, 6)
    assert torch.equal(net(x, torch.tensor([0, 10, 500, 999])), torch.zeros(4, 6))
    D = denoisers.VPDenoiser(net, ABAR, "x0")
    assert D.net.input_shape == (6,)
    out = rcg.sample_vectors(D, 8, seed=0, steps=5)
    assert out.shape == (8, 6) and torch.isfinite(out).all()


def test_sample_set_names_what_it_cannot_take():
    with pytest.raises(InputError, match="pixel"):
        rcg_sampling.sample_set("unet_fmnist", "quick", reps="null", n=4)
    with pytest.raises(InputError, match="reps"):
        rcg_sampling.sample_set("rcg_unet_fmnist", "quick", reps="unet_fmnist", n=4)
    with pytest.raises(InputError, match="rdm"):
        rcg_sampling.representation_samples("unet_fmnist", "quick", n=4)


def test_sets_of_different_sizes_share_their_first_representations_and_images(monkeypatch):
    """The RDM's ancestral sampler draws its noise for all vectors at once, so a set of 4 and a set of 6 would be told
    different representations; a shared pool keeps them paired (the chapter's 300 and 1,000 image sets)."""
    monkeypatch.setenv("DIFFREP_MEMO", "0")
    monkeypatch.setattr(rcg_sampling, "REP_POOL", 8)
    small = rcg_sampling.sample_set("rcg_unet_fmnist", "quick", reps="rdm_simclr", n=4, nfe=2)
    large = rcg_sampling.sample_set("rcg_unet_fmnist", "quick", reps="rdm_simclr", n=6, nfe=2)
    assert torch.equal(small["reps"], large["reps"][:4])
    assert torch.allclose(small["x"], large["x"][:4], atol=1e-5)
    drawn = rcg_sampling.representation_samples("rdm_simclr", "quick", n=8)
    assert torch.equal(small["reps"], drawn[:4])
