"""diffrep_lib: the helper library of *diffrep*, the executable companion to the survey
"Diffusion Models and Representation Learning" (Fuest et al. 2024). Import it as `import diffrep_lib as dr`.
"""
from . import (alignment, architecture, assignments, claims, costs, data, denoisers, diffusers_bridge, encoders, features, forward_process,
               framework, generation, guidance, memo, metrics, models, parameterisation, plotting, probes, profile,
               readout, recipes, repa, samplers, schedules, selfsup, survey, training, zoo)

__version__ = "0.1.0"
