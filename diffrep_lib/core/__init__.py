"""The diffusion core (survey §2.1-§2.3): noise schedules, the forward process, parameterisations, the one denoiser
contract D(x, sigma, cond) -> x0_hat and its adapters (flow matching's velocity networks among them), samplers as
functions, guidance as denoiser wrappers, the bridge to diffusers' schedulers, losses, sample metrics and
sample-set drawing. Pure functions over tensors; imports nothing else of the library."""
from . import (denoisers, diffusers_bridge, flow_matching, forward_process, guidance, losses, metrics,
               parameterisation, precision, samplers, sampling, schedules)
