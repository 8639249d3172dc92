"""Methods: one module per method family, registering its zoo entries (`zoo.registry`) when imported, and what the
families share (`encoders`: frozen image encoders and the teacher wrapper).

This file is the one place that registers them: a new method adds its module here and to nothing else of the
zoo. A method may import every layer below it (core, support, models, data, readout, zoo); the zoo never imports
a method.
"""
from . import denoising, classifiers, encoders, simclr, assignments, repa, flow, distill, ldae, synthetic, generated_views, joint, rcg, diffae, scene_tokens   # noqa: E401  (bases first)

__all__ = ["denoising", "classifiers", "encoders", "simclr", "assignments", "repa", "flow", "distill", "ldae", "synthetic", "generated_views", "joint", "rcg", "diffae", "scene_tokens"]
