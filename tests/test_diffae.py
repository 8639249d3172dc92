"""Diffusion autoencoders (methods.diffae, models.diff_ae): the encoder learns through the denoising loss, the
decoder is told the code, DDIM inversion and decoding round-trip, and slerp's endpoints and norms."""
import pytest
import torch

from diffrep_lib import denoisers
from diffrep_lib.errors import InputError
from diffrep_lib.methods import diffae
from diffrep_lib.models import DiffAE, DiffAEConfig, EncoderConfig, build
from diffrep_lib.zoo import recipes

TINY = DiffAEConfig(channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, rep_dim=12,
                    encoder=EncoderConfig(widths=(4, 8, 12)))


def test_the_code_length_must_match_the_encoder():
    with pytest.raises(ValueError, match="rep_dim=16 must equal the encoder's last width 12"):
        DiffAEConfig(rep_dim=16, encoder=EncoderConfig(widths=(4, 8, 12)))
    assert isinstance(build(TINY), DiffAE)


def test_the_denoising_loss_trains_the_encoder_through_the_code():
    torch.manual_seed(0)
    net = DiffAE(TINY)
    for p in net.parameters():                       # the zero-initialised output layers would block the gradient
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    r = recipes.get("diffae_fmnist", "quick")
    abar = recipes.abar(r)
    loss = diffae.diffae_terms(net, x, None, recipe=r, abar=abar, generator=torch.Generator().manual_seed(1))
    loss["denoise"].mean().backward()
    enc = [p.grad for p in net.encoder.parameters() if p.requires_grad]
    assert enc and all(g is not None for g in enc) and sum(g.abs().sum() for g in enc) > 0
    assert not hasattr(net.encoder.head, "weight")     # SimCLR's projection head is not part of the autoencoder
    net.eval()
    with torch.no_grad():                            # the decoder's output depends on the code it is told
        t, z = torch.full((6,), 300), diffae.semantic_codes(net, x)
        assert not torch.allclose(net(x, t, z), net(x, t, z.flip(0)))


def test_the_zoo_recipe_never_drops_the_code_and_builds():
    r = recipes.get("diffae_fmnist", "quick")
    assert r.task == "diffae" and r.p_uncond == 0 and isinstance(build(r.model), DiffAE)
    assert r.model.rep_dim == r.model.encoder.widths[-1]


class _Shifted(denoisers.NoiseRange):
    """The exact denoiser of x0 = z + N(0, diag(1, 0.25)) in 2-D: a code that matters, in closed form."""

    def __init__(self):
        self.sigmas = torch.logspace(-3, 1.5, 100, dtype=torch.float64)
        self.var = torch.tensor([1.0, 0.25], dtype=torch.float64)

    def __call__(self, x, sigma, z=None):
        s2 = sigma.double()[:, None] ** 2
        return z + self.var / (self.var + s2) * (x - z)


def test_stochastic_code_and_decode_round_trip_with_the_right_code_only():
    D, g = _Shifted(), torch.Generator().manual_seed(0)
    z = torch.randn(32, 2, generator=g, dtype=torch.float64) * 3
    x0 = z + torch.randn(32, 2, generator=g, dtype=torch.float64) * D.var.sqrt()
    x_T = diffae.stochastic_code(D, x0, z, 400)
    assert (x_T - z).std() > 10                                      # it really went to noise
    err = lambda steps: (diffae.decode(D, diffae.stochastic_code(D, x0, z, steps), z, steps) - x0).abs().max()
    assert err(400) < 0.02 and err(100) / err(400) > 2               # first order in the step
    wrong = diffae.decode(D, x_T, z.roll(1, 0), 400)                 # the same x_T, another image's code
    assert (wrong - x0).abs().max() > 1


def test_slerp_keeps_gaussian_norms_and_returns_the_endpoints():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    path = diffae.slerp(a, b, torch.linspace(0, 1, 5))
    assert path.shape == (5, 3, 1, 28, 28) and torch.equal(path[0], a) and torch.equal(path[-1], b)
    norms = path.flatten(2).norm(dim=2)                  # nearly orthogonal: the norm stays between the ends'
    low, high = torch.minimum(norms[0], norms[-1]), torch.maximum(norms[0], norms[-1])
    assert ((norms > 0.99 * low) & (norms < 1.01 * high)).all()
    linear_mid = ((a + b) / 2).flatten(1).norm(dim=1)
    assert (linear_mid < 0.8 * norms[2]).all()                       # the linear mix shrinks half-way
    same = diffae.slerp(a, 2 * a, 0.5)[0]                            # parallel: the linear limit
    assert torch.allclose(same, 1.5 * a, atol=1e-5)
    with pytest.raises(InputError, match="weights in \\[0, 1\\]"):
        diffae.slerp(a, b, 1.5)
    with pytest.raises(InputError, match="one shape"):
        diffae.slerp(a, b[:2], 0.5)
