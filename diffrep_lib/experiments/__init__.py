"""Experiments: each chapter's measurements as functions of names (zoo model, profile, seed), memoised on disk so
that a chapter's second execution costs seconds. They may import every layer below; nothing in the library imports
them: notebooks and scripts do.

- `generation`: sample sets of zoo models, plain or guided (chs. 1-3, 7, 9-11);
- `costs`: FLOPs and training throughput (ch. 2, make bench);
- `activations`: DDAE grids, DDPM-Seg, DIFT, Hyperfeatures with their controls (ch. 4);
- `transfer`: the Diffusion Classifier's error tables and the distilled students' probes (ch. 5);
- `reconstruction`: l-DAE's encoder probed against its latent size, noise levels and labels (ch. 6);
- `joint_models`: the classifier heads of joint diffusion models on validation and test images (ch. 7);
- `rcg_sampling`: representation-conditioned generation's sample sets (ch. 10);
- `scene_edits`: diffusion self-guidance's edits of generated toy scenes, measured on the images (ch. 11);
- `augmentation`: a small CNN trained on few real labels and on generated images, with their controls (ch. 8);
- `alignment`: REPA's curves, speed-up and hidden-state probes (ch. 12).
"""
from . import activations, alignment, augmentation, costs, generation, joint_models, rcg_sampling, reconstruction, scene_edits, transfer
