"""Guidance wrappers: limits of the scale, one doubled network call, sign of the classifier gradient."""
import pytest
import torch
from torch import nn

from diffrep_lib import denoisers, guidance, samplers, schedules
from diffrep_lib.models import NoisyClassifier, UNet, UNetConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear(1000))


class Counting(nn.Module):
    """A denoiser that counts its calls and the batch sizes it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x, sigma, cond=None):
        self.calls.append(x.shape[0])
        return self.inner(x, sigma, cond)


@pytest.fixture(scope="module")
def D():
    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2))
    for p in net.parameters():                      # a random but not zero-output network
        nn.init.normal_(p, std=0.05)
    return denoisers.VPDenoiser(net, ABAR).eval()


def test_cfg_scale_one_is_conditional_and_zero_is_unconditional(D):
    x, sigma, y = torch.randn(4, 1, 28, 28), torch.full((4,), 2.0), torch.tensor([0, 3, 5, 9])
    with torch.no_grad():
        cond, uncond = D(x, sigma, y), D(x, sigma, torch.full_like(y, 10))
        assert torch.allclose(guidance.cfg(D, 1.0, 10)(x, sigma, y), cond, atol=1e-6)
        assert torch.allclose(guidance.cfg(D, 0.0, 10)(x, sigma, y), uncond, atol=1e-5)
        mixed = guidance.cfg(D, 3.0, 10)(x, sigma, y)
        assert torch.allclose(mixed, uncond + 3 * (cond - uncond), atol=1e-5)


def test_cfg_calls_the_network_once_per_step_with_a_doubled_batch(D):
    counting = Counting(D)
    sigmas = schedules.sigmas_karras(5, 0.01, 80.0)
    samplers.sample_dpmpp_2m(guidance.cfg(counting, 2.0, 10), 80 * torch.randn(3, 1, 28, 28), sigmas,
                             cond=torch.tensor([1, 2, 3]))
    assert counting.calls == [6] * 5


def test_cfg_interval_guides_only_inside(D):
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([1, 2])
    g = guidance.cfg(D, 4.0, 10, interval=(0.5, 5.0))
    with torch.no_grad():
        # outside the interval: the conditional prediction itself; it comes from a doubled batch, whose kernels round
        # differently from a batch of two (measured: up to 1.6e-6 on outputs of size ~3), hence atol 1e-5
        assert torch.allclose(g(x, torch.full((2,), 20.0), y), D(x, torch.full((2,), 20.0), y), atol=1e-5)
        assert not torch.allclose(g(x, torch.full((2,), 1.0), y), D(x, torch.full((2,), 1.0), y), atol=1e-4)


def test_classifier_guidance_scale_zero_is_the_identity_and_the_gradient_has_the_right_sign(D):
    torch.manual_seed(1)
    clf = NoisyClassifier().eval()
    sig_table = schedules.sigma_from_abar(ABAR)
    x, sigma, y = 2 * torch.randn(8, 1, 28, 28), torch.full((8,), 2.0), torch.arange(8)
    with torch.no_grad():
        plain = D(x, sigma, torch.full_like(y, 10))
    assert torch.equal(guidance.classifier_guidance(D, clf, 0.0, sig_table, null=10)(x, sigma, y), plain)
    guided = guidance.classifier_guidance(D, clf, 1.0, sig_table, null=10)(x, sigma, y)
    # the guided x0 moves x along sigma^2 grad log p(y | x): a small step in that direction raises log p
    step = (guided - plain) / 4.0 * 1e-2

    def log_p(z):
        alpha = (1 + sigma[0] ** 2) ** -0.5
        t = schedules.sigma_to_t(sigma.double(), sig_table).float()
        return torch.log_softmax(clf(alpha * z, t), 1).gather(1, y[:, None]).squeeze(1)

    with torch.no_grad():
        assert (log_p(x + step) > log_p(x)).all()


def test_guidance_without_a_condition_is_a_clear_error(D):
    with pytest.raises(ValueError, match="cond: got None.*pass cond"):
        guidance.cfg(D, 2.0, 10)(torch.randn(1, 1, 28, 28), torch.ones(1))


def test_guided_ddim_step_with_clipping_uses_the_eps_of_the_clipped_x0(D):
    """One DDIM step of a strongly guided, clipped denoiser: the direction term uses
    eps = (x_t - alpha x0_clipped) / s, not the network's unclipped eps."""
    x_t = torch.randn(4, 1, 28, 28) * 1.5
    y = torch.tensor([0, 1, 2, 3])
    a_t, a_prev = ABAR[700].float(), ABAR[600].float()
    sig = schedules.sigma_from_abar(ABAR)
    G = guidance.cfg(D, 8.0, 10)
    with torch.no_grad():
        x0_raw = G(x_t / a_t.sqrt(), sig[700].float().expand(4), y)
        x0_clip = x0_raw.clamp(-1, 1)
        assert (x0_raw.abs() > 1).any()                              # clipping really bites here
        eps_consistent = (x_t - a_t.sqrt() * x0_clip) / (1 - a_t).sqrt()
        eps_raw = (x_t - a_t.sqrt() * x0_raw) / (1 - a_t).sqrt()
        want = a_prev.sqrt() * x0_clip + (1 - a_prev).sqrt() * eps_consistent
        wrong = a_prev.sqrt() * x0_clip + (1 - a_prev).sqrt() * eps_raw
        got = samplers.sample_ddim(denoisers.clip_x0(G), x_t / a_t.sqrt(), torch.stack([sig[700], sig[600]]),
                                   cond=y, span="partial") * a_prev.sqrt()
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, wrong, atol=1e-2)


def test_score_form_equals_the_ancestral_mean_shift_for_consecutive_steps(D):
    """guided-diffusion's 'condition_mean' shifts the DDPM posterior mean by Sigma_t * s * g, g = grad_{x_t} log p;
    the score form shifts x0_hat by s sigma^2 grad_x log p, which moves the posterior mean by s beta_t / sqrt(alpha_t) g.
    The two differ by the factor Sigma_t sqrt(alpha_t) / beta_t, which tends to 1 for consecutive steps of the
    1000-step chain (0.994 at t = 500): on the DDPM chain the score form is the ancestral mean shift."""
    from diffrep_lib import forward_process

    torch.manual_seed(2)
    clf = NoisyClassifier().eval()
    sig_table = schedules.sigma_from_abar(ABAR)
    t = 500
    a_t = ABAR[t].float()
    x_t, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    sigma = sig_table[t].float().expand(4)
    scale = 2.0
    with torch.no_grad():
        x0 = D(x_t / a_t.sqrt(), sigma, torch.full_like(y, 10))
    x0_guided = guidance.classifier_guidance(D, clf, scale, sig_table, null=10)(x_t / a_t.sqrt(), sigma, y)
    tt = torch.full((4,), t)
    mean_score, var = forward_process.q_posterior(x0_guided.double(), x_t.double(), tt, ABAR)
    mean_plain, _ = forward_process.q_posterior(x0.double(), x_t.double(), tt, ABAR)
    x = x_t.clone().requires_grad_(True)                           # grad wrt x_t, as guided-diffusion takes it
    log_p = torch.log_softmax(clf(x, torch.full((4,), float(t))), 1).gather(1, y[:, None]).sum()
    g = torch.autograd.grad(log_p, x)[0].double()
    delta_shift = var * scale * g                                   # condition_mean with Sigma = posterior variance
    beta, alpha_t = 1 - ABAR[t] / ABAR[t - 1], ABAR[t] / ABAR[t - 1]
    factor = var.flatten()[0] * alpha_t.sqrt() / beta
    assert abs(factor - 1) < 0.01
    assert torch.allclose(mean_score - mean_plain, delta_shift / factor, rtol=1e-3, atol=1e-7)
