"""l-DAE's pieces (models/pca_tokenizer.py, methods/ldae.py): patches round-trip, the PCA basis is orthonormal and
sorted, the tokenizer is exact at d = D and a projection below it, the noise stays in the latent's span, and the
loss weighs what the latent discards by 0.1 and the noise level by 1 / (1 + sigma^2)."""
import pytest
import torch

from diffrep_lib.methods import ldae
from diffrep_lib.models import pca_tokenizer
from diffrep_lib.models.patches import patchify, unpatchify


def images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 28, 28, generator=g)
    return torch.nn.functional.avg_pool2d(base, 3, 1, 1)          # correlated pixels: a spread of variances


def test_patches_round_trip_in_row_major_order():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 4, 48) and torch.equal(unpatchify(tokens, 4, 3), x)
    assert torch.equal(tokens[0, 1].reshape(4, 4, 3)[..., 0], x[0, 0, :4, 4:])  # second patch: top right
    with pytest.raises(ValueError, match="multiple"):
        patchify(x, 3)


def test_the_basis_is_orthonormal_and_sorted_and_the_full_tokenizer_is_exact():
    x = images()
    tok = pca_tokenizer.fit(x, patch=7, d=49)
    torch.testing.assert_close(tok.basis @ tok.basis.T, torch.eye(49), atol=1e-5, rtol=0)
    assert (tok.variance[:-1] >= tok.variance[1:]).all() and tok.variance[0] > 10 * tok.variance[-1]
    torch.testing.assert_close(tok.decode(tok.encode(x)), x, atol=1e-5, rtol=0)


def test_below_full_dimension_the_tokenizer_is_a_projection():
    x = images()
    tok = pca_tokenizer.fit(x, patch=7, d=8)
    z = tok.encode(x)
    assert z.shape == (64, 16, 8)
    torch.testing.assert_close(tok.encode(tok.decode(z)), z, atol=1e-5, rtol=0)       # idempotent
    err = (tok.decode(z) - x).square().mean()
    worse = (pca_tokenizer.fit(x, patch=7, d=4).decode(pca_tokenizer.fit(x, patch=7, d=4).encode(x)) - x)
    assert 0 < err < worse.square().mean()                                            # more components, closer


def test_the_noise_stays_in_the_latent_span():
    x = images()
    tok = pca_tokenizer.fit(x, patch=7, d=8)
    sigma, eps = torch.full((64,), 1.2), torch.randn(64, 16, 8)
    c = tok.coordinates(ldae.noised_input(tok, x, sigma, eps))
    torch.testing.assert_close(c[..., 8:], torch.zeros_like(c[..., 8:]), atol=1e-5, rtol=0)
    torch.testing.assert_close(c[..., :8], tok.encode(x) + 1.2 * eps, atol=1e-5, rtol=0)


def test_the_loss_weighs_discarded_coordinates_by_a_tenth_and_noise_by_lambda():
    x = images(4)
    tok = pca_tokenizer.fit(images(), patch=7, d=8)
    zero = torch.zeros(4)
    assert torch.equal(ldae.residual_loss(tok, x, x, zero), torch.zeros(4))
    step = lambda i: unpatchify(tok.basis[i].expand(4, 16, 49), 7, 1)                # one unit along row i
    kept, dropped = (ldae.residual_loss(tok, x + step(i), x, zero) for i in (3, 20))
    torch.testing.assert_close(kept, torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(dropped, torch.full((4,), 0.1), atol=1e-5, rtol=0)
    torch.testing.assert_close(ldae.residual_loss(tok, x + step(3), x, torch.full((4,), 1.0)), torch.full((4,), 0.5),
                               atol=1e-5, rtol=0)
    assert ldae.sigmas(1000)[0] == 0 and ldae.sigmas(1000)[-1] == pytest.approx(2 ** 0.5)
