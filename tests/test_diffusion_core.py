"""The diffusion core against diffusers and closed forms (schedules, forward process, posterior, steps)."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from diffrep_lib import forward_process, parameterisation, samplers, schedules

T = 1000


def test_linear_and_cosine_schedules_match_diffusers():
    ours = schedules.alphas_cumprod(schedules.betas_linear(T))
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear").alphas_cumprod.double()
    assert torch.allclose(ours, ref, atol=1e-6)
    cos = schedules.alphas_cumprod(schedules.betas_cosine(T))
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    assert torch.allclose(cos, ref, atol=1e-6)


def test_schedule_properties():
    abar = schedules.alphas_cumprod(schedules.betas_linear(T))
    sig = schedules.sigma_from_abar(abar)
    assert (abar.diff() < 0).all() and (sig.diff() > 0).all()              # monotone
    assert torch.allclose(schedules.abar_from_sigma(sig), abar)             # round trip
    assert torch.allclose(schedules.snr(abar), 1 / sig**2)
    a, s = schedules.vp_coefficients(sig)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a))
    t = schedules.sigma_to_t(sig[[0, 17, 500, 999]], sig)
    assert torch.allclose(t, torch.tensor([0.0, 17.0, 500.0, 999.0], dtype=t.dtype))


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_timestep_spacing_matches_diffusers(spacing):
    sch = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    sch.set_timesteps(20)
    assert schedules.timesteps(T, 20, spacing).tolist() == sch.timesteps.tolist()


def test_q_sample_matches_diffusers_add_noise():
    sch = DDPMScheduler(num_train_timesteps=T)
    abar = schedules.alphas_cumprod(schedules.betas_linear(T))
    x0, eps = torch.randn(8, 1, 6, 6), torch.randn(8, 1, 6, 6)
    t = torch.tensor([0, 1, 50, 250, 500, 750, 998, 999])
    assert torch.allclose(forward_process.q_sample(x0, t, abar, eps), sch.add_noise(x0, eps, t), atol=1e-5)


# diffusers forms beta_t = 1 - abar_t / abar_{t-1} in float32 scalars; at t = 1 that subtraction loses
# ~4 digits (beta_1 ~ 1.2e-4), so there the match can only be to diffusers' own precision.
@pytest.mark.parametrize("t,atol", [(1, 1e-3), (10, 1e-5), (500, 1e-5), (999, 1e-5)])
def test_posterior_and_ddpm_step_match_diffusers(t, atol):
    sch = DDPMScheduler(num_train_timesteps=T, clip_sample=False, variance_type="fixed_small")
    abar = sch.alphas_cumprod.double()          # the same (float32) schedule on both sides
    x_t, eps_hat = torch.randn(4, 1, 5, 5, dtype=torch.float64), torch.randn(4, 1, 5, 5, dtype=torch.float64)
    tt = torch.full((4,), t)
    x0_hat = parameterisation.to_x0(eps_hat, "eps", x_t, abar[t].sqrt(), (1 - abar[t]).sqrt())
    mean, var = forward_process.q_posterior(x0_hat, x_t, tt, abar)
    out = sch.step(eps_hat, t, x_t, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(out.pred_original_sample, x0_hat, atol=1e-5)
    assert torch.allclose(out.prev_sample, mean + var.sqrt() * noise, atol=atol)


@pytest.mark.parametrize("t,prev", [(999, 949), (500, 450), (50, 0)])
def test_ddim_step_matches_diffusers(t, prev):
    """One step of our sample_ddim (VE scaling in, VE out) equals DDIMScheduler.step on VP samples."""
    sch = DDIMScheduler(num_train_timesteps=T, clip_sample=False, set_alpha_to_one=True)
    sch.set_timesteps(20)                       # leading spacing: 950, 900, ..., 0, step 50
    abar = schedules.alphas_cumprod(schedules.betas_linear(T))
    x_t = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    x0_true = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    denoiser = lambda x, sigma, cond=None: x0_true                           # any fixed prediction
    a_t, s_t = abar[t].sqrt(), (1 - abar[t]).sqrt()
    eps_hat = (x_t - a_t * x0_true) / s_t
    ref = sch.step(eps_hat.float(), t, x_t.float()).prev_sample.double()
    sig = schedules.sigma_from_abar(abar)
    sigmas = torch.stack([sig[t], sig[prev] if prev >= 0 else torch.tensor(0.0, dtype=torch.float64)])
    ours = samplers.sample_ddim(denoiser, x_t / a_t, sigmas, span="partial") * abar[prev].sqrt()
    assert torch.allclose(ours, ref, atol=1e-5)


def test_vlb_weights_are_positive_and_not_uniform():
    w = forward_process.vlb_weights(schedules.betas_linear(T))
    assert (w > 0).all() and w[0] > 10 * w[500]


def test_bf16_autocast_only_where_the_device_computes_bf16_natively(monkeypatch):
    """On a CPU without bf16 instructions bf16 is emulated (about 10x slower than float32): float32 there."""
    from diffrep_lib.core import precision
    a = torch.ones(4, 4)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with precision.bf16_autocast("cpu"):
        assert (a @ a).dtype == torch.float32
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with precision.bf16_autocast(a.device):
        assert (a @ a).dtype == torch.bfloat16
    with precision.bf16_autocast("cpu", enabled=False):
        assert (a @ a).dtype == torch.float32


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_timesteps_equal_diffusers_for_every_step_count(spacing):
    """Every n from 1 to T = 1000 (and to T = 100): diffusers computes these in float64 numpy; a float32 torch
    version rounds some of them the other way (trailing at n = 48, linspace at n = 27)."""
    for T in (1000, 100):
        sch = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
        wrong = []
        for n in range(1, T + 1):
            sch.set_timesteps(n)
            if not torch.equal(schedules.timesteps(T, n, spacing), sch.timesteps.long()):
                wrong.append(n)
        assert wrong == [], f"{spacing}, T = {T}: differs at n = {wrong[:10]}"
