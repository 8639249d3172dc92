"""Let any `diffusers` scheduler drive a denoiser of this library (ch. 1).

diffusers schedulers work on VP samples x_t and expect the model's eps (prediction_type='epsilon') at
their timesteps; our denoisers take x = x_t / alpha and a VE sigma. The bridge converts at the edge::

    sigma(t) from the scheduler's own alphas_cumprod (interpolated for fractional timesteps),
    x0_hat = D(x_t / alpha, sigma),   eps_hat = (x_t - alpha x0_hat) / s.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GridError, InputError, bad, check_int
from . import schedules
from .forward_process import per_sample

Tensor = torch.Tensor


def eps_model(denoiser, scheduler, cond=None):
    """model(x_t, t) -> eps_hat for the scheduler's VP convention, built from a denoiser."""
    sigmas = schedules.sigma_from_abar(scheduler.alphas_cumprod.double())
    table_t = torch.arange(len(sigmas), dtype=torch.float64)

    def model(x_t: Tensor, t) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(1)
        log_sigma = torch.from_numpy(np.interp(t.numpy(), table_t.numpy(), sigmas.log().numpy()))
        sigma = log_sigma.exp().expand(x_t.shape[0])
        alpha, s = schedules.vp_coefficients(sigma)
        alpha, s = (per_sample(v, x_t) for v in (alpha, s))
        x0 = denoiser(x_t / alpha, sigma.to(x_t.dtype), cond)
        return (x_t - alpha * x0) / s

    return model


@torch.no_grad()
def sample(denoiser, scheduler, x_T: Tensor, steps: int, *, cond=None, generator=None, callback=None,
           step_kwargs: dict | None = None) -> Tensor:
    """Run `scheduler` (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, ...)
    for `steps` steps from VP noise x_T, with eps_hat from `denoiser`. Returns the final VP sample (= x0).
    `step_kwargs` go to every `scheduler.step` call (e.g. DDIM's use_clipped_model_output)."""
    if scheduler.config.prediction_type != "epsilon":
        raise bad(InputError, "scheduler", f"prediction_type={scheduler.config.prediction_type!r}",
                  "the bridge hands the scheduler eps: create it with prediction_type='epsilon'")
    steps = check_int(steps, "steps", f"pass 1 to {scheduler.config.num_train_timesteps} steps",
                      high=scheduler.config.num_train_timesteps, kind=GridError)
    scheduler.set_timesteps(steps)
    model = eps_model(denoiser, scheduler, cond)
    x = x_T * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        x_in = scheduler.scale_model_input(x, t)
        kwargs = {**({"generator": generator} if generator is not None else {}), **(step_kwargs or {})}
        x = scheduler.step(model(x_in, t), t, x, **kwargs).prev_sample
        if callback is not None:
            callback({"i": i, "t": float(t), "x": x})
    return x
