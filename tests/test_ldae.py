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


# --- the network and the zoo task (models/latent_dae.py, methods/ldae.ldae_terms, representation) ---------------

from dataclasses import replace as _replace

from diffrep_lib import recipes
from diffrep_lib.models import DiTConfig, LatentDAE, LatentDAEConfig, build
from diffrep_lib.zoo import build as zoo_build

SMALL = LatentDAEConfig(d=4, dit=DiTConfig(patch=7, dim=32, depth=4, heads=2, num_classes=None))


def small_recipe(**change):
    return _replace(recipes.get("ldae_d4"), model=SMALL, **change)


def test_the_tokenizer_is_fitted_into_the_state_dict_and_travels_with_the_weights():
    net = LatentDAE(SMALL)
    assert not net.fitted
    x = images(200)
    net.fit_tokenizer(x)
    assert net.fitted
    fresh = LatentDAE(SMALL)
    fresh.load_state_dict(net.state_dict())
    assert fresh.fitted and torch.equal(fresh.tokenizer.basis, pca_tokenizer.fit(x, 7, 4).basis)
    assert fresh(x[:3], torch.tensor([5, 6, 7])).shape == (3, 1, 28, 28)
    assert isinstance(build(SMALL), LatentDAE) and net.encoder_blocks == 2


def test_bad_latent_sizes_are_refused():
    with pytest.raises(ValueError, match="1..49"):
        LatentDAEConfig(d=50)
    with pytest.raises(ValueError, match="does not tile"):
        LatentDAEConfig(tokenizer_patch=5)


class Spy(torch.nn.Module):
    """Records what the l-DAE terms feed the network; predicts the input itself."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    tokenizer = property(lambda self: self.net.tokenizer)
    null_label = property(lambda self: self.net.null_label)

    def forward(self, x, t, y=None):
        self.calls.append((x, t, y))
        return x + 0 * self.net(x, t, y)


def test_the_terms_draw_every_level_or_the_recipes_single_one_and_noise_only_the_latent():
    x = images(32)
    spy = Spy(LatentDAE(SMALL).fit_tokenizer(images(200)))
    g = torch.Generator().manual_seed(0)
    out = ldae.ldae_terms(spy, x, recipe=small_recipe(), generator=g)["ldae"]
    x_t, t, y = spy.calls[-1]
    assert out.shape == (32,) and y is None and len(t.unique()) > 20
    # the network's input lies in the span of the latent around the patches' mean: re-encoding it changes nothing
    tok = spy.tokenizer
    torch.testing.assert_close(tok.decode(tok.encode(x_t)), x_t, atol=1e-5, rtol=0)
    ldae.ldae_terms(spy, x, recipe=small_recipe(options=(("sigma", 1 / 3),)), generator=g)
    t = spy.calls[-1][1]
    assert t.unique().tolist() == [ldae.timestep_of(1 / 3)] and abs(ldae.sigmas()[t[0]] - 1 / 3) < 1e-3


def test_a_label_conditioned_network_is_told_the_labels_with_dropout_and_read_with_the_null_label():
    cfg = _replace(SMALL, dit=_replace(SMALL.dit, num_classes=10))
    spy = Spy(LatentDAE(cfg).fit_tokenizer(images(200)))
    y = torch.arange(64) % 10
    ldae.ldae_terms(spy, images(64), y, recipe=small_recipe(p_uncond=0.5), null=10,
                    generator=torch.Generator().manual_seed(0))
    told = spy.calls[-1][2]
    assert ((told == y) | (told == 10)).all() and 10 < (told == 10).sum() < 54


def test_the_representation_is_the_pooled_tokens_of_the_encoder_half_on_the_clean_image():
    net = LatentDAE(SMALL).fit_tokenizer(images(200)).eval()
    x = images(7)
    feats = ldae.representation(net, x, batch=3)
    assert feats.shape == (7, 32)
    def by_hand(image):             # the DiT's first two blocks at t = 10
        with torch.no_grad():
            c = net.dit.time_embed(torch.full((7,), ldae.READ_T))
            h = net.dit.patch(image).flatten(2).transpose(1, 2) + net.dit.pos
            for block in net.dit.blocks[:2]:
                h = block(h, c)
        return h.mean(1)

    tok = net.tokenizer                 # read through the latent, as the network was trained
    torch.testing.assert_close(feats, by_hand(tok.decode(tok.encode(x))))
    torch.testing.assert_close(ldae.representation(net, x, input="image"), by_hand(x))
    assert not torch.allclose(feats, by_hand(x), atol=1e-3)
    with pytest.raises(ValueError, match="the DiT has 4"):
        ldae.representation(net, x, blocks=5)
    with pytest.raises(ValueError, match="not fitted"):
        ldae.representation(LatentDAE(SMALL), x)


def test_the_recipes_sweep_d_up_to_pixel_space_and_training_fits_the_tokenizer_first(monkeypatch):
    assert [recipes.get(f"ldae_d{d}").model.d for d in recipes.LDAE_DIMS][-1] == 49   # D = 7 * 7
    r = small_recipe(steps=2, batch_size=8, data="fashion_mnist")
    monkeypatch.setattr(ldae, "FIT_IMAGES", 300)
    net = zoo_build.build_model(r, for_training=True)
    assert net.fitted
    assert not zoo_build.build_model(r).fitted            # a stored model brings its own tokenizer


# --- the chapter's experiments (experiments/reconstruction.py) ------------------------------------------------

from diffrep_lib.errors import InputError
from diffrep_lib.experiments import reconstruction


def test_the_probe_reads_half_the_blocks_and_scores_validation_and_test(cache):
    out = reconstruction.ldae_probe("ldae_d8", "quick", sizes=(300, 200))
    assert out["blocks"] == 3 and out["n_test"] == 200 and out["linear_hits"].shape == (200,)
    assert out["linear"] == pytest.approx(out["linear_hits"].float().mean().item())
    assert 0 <= out["val_linear"] <= 1 and 0 <= out["knn"] <= 1
    by_block = reconstruction.ldae_depth("ldae_d8", "quick", sizes=(300, 200))
    assert sorted(by_block) == [1, 2, 3, 4, 5, 6]
    assert torch.equal(by_block[3]["linear_hits"], out["linear_hits"])   # one pass reads the same features
    control = reconstruction.ldae_probe("ldae_d8", "quick", sizes=(300, 200), init="random")
    assert not torch.equal(control["linear_hits"], out["linear_hits"])     # read through the trained tokenizer
    pixels = reconstruction.pixel_probe(sizes=(300, 200))
    assert pixels["n_test"] == 200 and not torch.equal(pixels["linear_hits"], out["linear_hits"])
    # the input alone: at d = 49 the latent is every pixel, so its probe is the pixels' probe
    full = reconstruction.input_probe("ldae_d49", "quick", sizes=(300, 200))
    assert full["linear"] == pytest.approx(pixels["linear"], abs=0.02)
    coarse = reconstruction.input_probe("ldae_d1", "quick", sizes=(300, 200))
    assert not torch.equal(coarse["linear_hits"], pixels["linear_hits"])


def test_a_model_that_is_not_an_ldae_is_refused_with_the_fix(cache):
    with pytest.raises(InputError, match="ldae_d8"):
        reconstruction.ldae_probe("unet_fmnist", "quick", sizes=(300, 200))
    with pytest.raises(InputError, match="trained"):
        reconstruction.ldae_probe("ldae_d8", "quick", sizes=(300, 200), init="scrambled")
    with pytest.raises(InputError, match="latent"):
        reconstruction.ldae_probe("ldae_d8", "quick", sizes=(300, 200), input="pixels")
