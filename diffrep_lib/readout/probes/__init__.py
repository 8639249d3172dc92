"""Probes on frozen features (survey §3.1.1-§3.1.2; ch. 4): what the Fig. 4 framework trains on top of a
diffusion network's activations.

- `linear_probe`, `knn_accuracy`, `few_label_probe`: classification from standardised feature vectors, with one
  fixed optimiser and budget (`ProbeConfig`) for every cell of a grid, so cells differ only by their features;
  `fit_linear_head` returns the linear probe's classifier itself (the start of a linear-probe-then-fine-tune);
- `PixelMLP`, `train_pixel_ensemble`, `predict_pixels`, `miou`: DDPM-Seg's per-pixel MLP ensemble;
- `match_points`, `pck`: DIFT's nearest-neighbour correspondence and its metric;
- `Hyperfeatures`, `correspondence_loss`: Diffusion Hyperfeatures' learned per-(t, layer) mixture.

One module per readout (`classification`, `segmentation`, `correspondence`, `hyperfeatures`); their names
are re-exported here, so `dr.probes.linear_probe` and `dr.probes.classification.linear_probe` are one function.
Every public function checks its arguments once, at the boundary, and raises `errors.InputError` naming the
argument, the value received and what to do (features of the wrong shape or width, labels of the wrong length,
dtype or range, NaN or inf, a single training class, k outside 1..N, ...); the computations are unchanged.
"""
from . import classification, correspondence, hyperfeatures, segmentation
from .classification import (ProbeConfig, _check_k, _knn_accuracy, _linear_probe, _linear_probe_scores, check_config,
                             check_inputs, few_label_probe, fit_linear_head, knn_accuracy, linear_probe, standardize)
from .correspondence import _match_points, keypoint_pck, match_points, pck
from .hyperfeatures import Hyperfeatures, correspondence_loss
from .segmentation import PixelMLP, miou, predict_pixels, train_pixel_ensemble
