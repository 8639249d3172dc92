"""diffrep_lib: the helper library of *diffrep*, the executable companion to the survey "Diffusion Models and
Representation Learning" (Fuest et al. 2024). Import it as `import diffrep_lib as dr`.

The library is layered; a layer imports only the layers below it (docs/ARCHITECTURE.md):

    errors                    the error families every layer raises on misuse (below every layer)
    core, support, survey     the diffusion core (schedules ... samplers, guidance, metrics); profiles, memo, claims
    models, data              backbones and classifiers; Fashion-MNIST, 2-D toys, toy scenes
    readout                   features by hooks, the Fig. 4 / Eq. 16 framework, probes
    zoo                       recipes, the method registry, the training loop, the weight store, the loading API
    methods                   one module per method family, registering its zoo entries
    experiments               each chapter's memoised measurements
    plotting                  the book's figures

The modules chapters call are also top-level names (`dr.samplers`, `dr.zoo`, `dr.features`, `dr.repa`, ...); the
others are reached through their layer (`dr.models.unet`, `dr.data.toy2d`, `dr.zoo.store`).
"""
from . import errors                                                                  # below every layer
from . import core, data, models, support, survey                                    # layers 0-1
from .core import (attention_guidance, denoisers, diffusers_bridge, flow_matching, forward_process, guidance,
                   losses, metrics, parameterisation, precision, samplers, sampling, schedules, self_guidance)
from .support import claims, hooks, memo, profile, runtime
from . import readout                                                                 # layer 2
from .readout import diffusion_classifier, features, framework, probes
from . import zoo                                                                     # layer 3
from .zoo import recipes, registry, training
from . import methods                                                                 # layer 4: registers methods
from .methods import (assignments, classifiers, denoising, distill, encoders, joint, ldae, rcg, repa,
                      scene_tokens, simclr, synthetic)
from . import experiments                                                             # layer 5
from .experiments import (activations, alignment, augmentation, costs, generation, joint_models,
                          rcg_sampling, reconstruction, scene_edits, transfer)
from .models import architecture
from . import plotting                                                                # layer 6

__version__ = "0.1.0"

__all__ = [
    # layers
    "errors", "core", "support", "survey", "models", "data", "readout", "zoo", "methods", "experiments", "plotting",
    # the diffusion core
    "schedules", "forward_process", "parameterisation", "denoisers", "samplers", "sampling", "guidance",
    "attention_guidance", "self_guidance", "diffusers_bridge", "flow_matching", "losses", "metrics", "precision",
    # support
    "profile", "memo", "claims", "runtime", "hooks",
    # models and readout
    "architecture", "features", "framework", "probes", "diffusion_classifier",
    # the zoo
    "recipes", "registry", "training",
    # methods
    "denoising", "classifiers", "encoders", "simclr", "assignments", "repa", "distill", "ldae", "rcg", "scene_tokens",
    # chapters' experiments
    "generation", "costs", "activations", "alignment", "transfer", "reconstruction", "rcg_sampling",
    "scene_edits",
]
