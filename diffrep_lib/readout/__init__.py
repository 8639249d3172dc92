"""Readout: representations read out of a trained network (survey §3.1, Fig. 4, Eq. 16) — activations by forward
hooks (`features`), the framework's steps and the (t, block) search (`framework`), and the heads trained on
frozen features (`probes`). Imports the diffusion core, models and support; nothing of the zoo or above."""
from . import features, framework, probes
