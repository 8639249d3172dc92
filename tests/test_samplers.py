"""Samplers against closed forms (Gaussian data) and against diffusers' schedulers."""
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from diffrep_lib import denoisers, diffusers_bridge, samplers, schedules
from diffrep_lib.data import toy2d

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)


def gaussian():
    return denoisers.gaussian_mixture_denoiser(MU[None], COV[None], torch.ones(1))


def test_gaussian_denoiser_is_the_posterior_mean():
    D = gaussian()
    x, sigma = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 0.7, dtype=torch.float64)
    want = MU + (COV @ torch.linalg.inv(COV + 0.49 * torch.eye(2)) @ (x - MU).T).T
    assert torch.allclose(D(x, sigma), want)
    assert torch.allclose(D(x, torch.full((5,), 1e-8, dtype=torch.float64)), x, atol=1e-6)  # identity at sigma -> 0


@pytest.mark.parametrize("name,steps", [("euler", 100), ("heun", 30), ("dpmpp_2m", 30), ("ddim", 100),
                                        ("ddpm", 200), ("euler_maruyama", 500)])
def test_exact_denoiser_reproduces_gaussian_mean_and_covariance(name, steps):
    g = torch.Generator().manual_seed(0)
    sigmas = schedules.sigmas_karras(steps, 0.002, 80.0)
    x = samplers.prior_noise((4000, 2), 80.0, generator=g).double()
    out = samplers.SAMPLERS[name](gaussian(), x, sigmas, generator=g)
    assert torch.allclose(out.mean(0), MU, atol=0.06)                 # ~3.5 standard errors at n = 4000
    assert torch.allclose(torch.cov(out.T), COV, atol=0.08)


def test_euler_is_ddim_with_eta_zero():
    D = denoisers.gaussian_mixture_denoiser(*toy2d.mixture("8gaussians"))
    sigmas = schedules.sigmas_karras(15, 0.01, 50.0)
    x = 50.0 * torch.randn(64, 2, dtype=torch.float64)
    assert torch.allclose(samplers.sample_euler(D, x, sigmas), samplers.sample_ddim(D, x, sigmas), atol=1e-9)


def test_ddim_runs_the_ode_backwards_as_euler_does():
    """DDIM with eta = 0 is Euler in this scaling in both directions: upwards (DDIM inversion) its noise term is
    zero, not the square root of a negative number."""
    D = gaussian()
    x0 = MU + torch.randn(8, 2, dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    up = torch.logspace(-3, 1.5, 50, dtype=torch.float64)
    via_ddim = samplers.sample_ddim(D, x0, up, span="inverse")
    assert torch.isfinite(via_ddim).all()
    assert torch.allclose(via_ddim, samplers.sample_euler(D, x0, up, span="inverse"), atol=1e-9)


def test_ddim_inverts_and_regenerates_a_sample():
    """Integrate the ODE up from a data point to noise and back down; the error is first order in the step."""
    D = gaussian()
    x0 = MU + torch.randn(16, 2, dtype=torch.float64) @ torch.linalg.cholesky(COV).T

    def round_trip(steps):
        up = torch.logspace(-3, 1.5, steps, dtype=torch.float64)
        latent = samplers.sample_euler(D, x0, up, span="inverse")                # x0 taken as the sample at sigma = 1e-3
        down = torch.cat([up.flip(0), torch.zeros(1, dtype=torch.float64)])
        return latent, samplers.sample_euler(D, latent, down)

    latent, back = round_trip(800)
    assert latent.std() > 10                                        # it really went to noise
    err800 = (back - x0).abs().max()
    err200 = (round_trip(200)[1] - x0).abs().max()
    assert err800 < 0.02 and err200 / err800 > 3


def test_diffusers_ddim_driven_through_the_bridge_matches_our_ddim():
    D = denoisers.gaussian_mixture_denoiser(*toy2d.mixture("8gaussians"))
    sch = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing", clip_sample=False)
    abar = sch.alphas_cumprod.double()
    ts = schedules.timesteps(1000, 25, "trailing")
    sigmas = schedules.sigmas_from_timesteps(abar, ts)
    x_T = torch.randn(256, 2, dtype=torch.float64)                  # VP noise at t = 999
    ref = diffusers_bridge.sample(D, sch, x_T, 25)
    ours = samplers.sample_ddim(D, x_T / abar[ts[0]].sqrt(), sigmas)
    assert torch.allclose(ref.double(), ours, atol=1e-5)


def test_diffusers_dpm_solver_through_the_bridge_agrees_with_ours_in_distribution():
    D = denoisers.gaussian_mixture_denoiser(*toy2d.mixture("8gaussians"))
    sch = DPMSolverMultistepScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    sch.set_timesteps(20)
    abar = sch.alphas_cumprod.double()
    sigmas = schedules.sigmas_from_timesteps(abar, sch.timesteps.long())
    x_T = torch.randn(512, 2, dtype=torch.float64)
    ref = diffusers_bridge.sample(D, sch, x_T, 20).double()
    ours = samplers.sample_dpmpp_2m(D, x_T / abar[sch.timesteps[0]].sqrt(), sigmas)
    assert (ref - ours).abs().max() < 0.05        # same algorithm, diffusers ends with a first-order step


def test_sampler_registry_and_nfe():
    assert set(samplers.SAMPLERS) >= {"euler", "heun", "ddim", "ddpm", "dpmpp_2m", "euler_maruyama"}
    assert samplers.nfe("heun", samplers.steps_for_nfe("heun", 9)) == 9
    assert samplers.nfe("ddim", 10) == 10


def test_unknown_sampler_is_a_clear_error():
    from diffrep_lib import sampling as generation

    with pytest.raises(ValueError, match="sampler: got .rk4.; choose one of"):
        generation.generate(lambda x, s, c=None: x, 2, sampler="rk4", sigmas=torch.tensor([1.0, 0.0]))
