"""Methods: one module per method family, each registering its zoo entries (`zoo.registry`) when imported.

This file is the one place that registers them: a new method adds its module here and to nothing else of the
zoo. A method may import every layer below it (core, support, models, data, readout, zoo); the zoo never imports
a method.
"""
from . import diffusion, classifiers, encoders, simclr, assignments, repa   # noqa: E401  (order: bases first)

__all__ = ["diffusion", "classifiers", "encoders", "simclr", "assignments", "repa"]
