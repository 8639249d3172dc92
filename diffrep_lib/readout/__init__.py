"""Readout: representations read out of a trained network (survey §3.1, Fig. 4, Eq. 16) — activations by forward
hooks (`features`), the framework's steps and the (t, block) search (`framework`), the heads trained on
frozen features (`probes`), and the class read out of a conditional denoiser by Bayes' rule
(`diffusion_classifier`, survey §3.1.3). Imports the diffusion core, models and support; nothing of the zoo or above."""
from . import diffusion_classifier, features, framework, probes
