"""Compute profiles: one object sizes every experiment of the book (docs/ARCHITECTURE.md, "Profiles").

`quick` is what CI runs on 2 CPU cores with the shipped zoo weights; `full` is what the published book
shows on one GPU, training from scratch. `auto` picks `full` on a CUDA device and `quick` otherwise,
unless the environment variable ``DIFFREP_PROFILE`` names a profile.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Profile:
    name: str
    device: str
    # sampling and evaluation sizes (chapter 1)
    n_samples: int            # images per FID-FM evaluation
    n_ref: int                # reference (test-split) images for FID-FM statistics
    nfe_grid: tuple           # network evaluations compared across samplers
    ancestral_nfe: tuple      # budgets of the ancestral (DDPM) reference sampler
    converged_nfe: int        # a budget at which the ODE solvers have converged (DPM-Solver++ reference)
    guidance_scales: tuple    # classifier-free guidance scales swept (ch. 3)
    cg_scales: tuple          # classifier-guidance scales swept (ch. 3)
    guidance_nfe: int         # sampler budget of the guidance sweeps
    n_toy: int                # points per 2-D toy experiment
    toy_steps: int            # SDE/ODE steps on the 2-D toy
    # representations from activations (chapter 4)
    probe_sizes: tuple        # (training, test) images of the classification probes
    probe_ts: tuple           # timesteps of the probe grids (t = 0 is the least noisy step)
    seg_labels: tuple         # labelled images per segmentation budget
    seg_ts: tuple             # timesteps searched for segmentation and correspondence
    seg_eval: int             # test scenes scored per segmentation / correspondence pair set
    dift_ensemble: int        # noise draws averaged per feature map for correspondence
    hyper_steps: int          # training steps of the hyperfeature mixture
    # knowledge transfer (chapter 5)
    dc_images: int            # test images the Diffusion Classifier scores
    dc_draws: int             # its (t, eps) draws per class at most (K), on a stratified grid of timesteps
    student_sizes: tuple      # (training, test) images of the students' frozen probes (6,000 = 10% of the labels)
    finetune_labels: tuple    # labelled images of the few-label fine-tunes (600 = 1% of the labels)
    finetune_steps: int       # optimiser steps of every fine-tune (batch 64, the same for every encoder)
    # reconstructing diffusion models (chapter 6)
    ldae_sizes: tuple         # (training, test) images of l-DAE's probes (as many validation images as test;
                              # 10,000: every test image)
    # generative augmentation (chapter 8)
    augment_sizes: tuple      # (real images per class, synthetic images per class, learner steps, test images)
    # representations for diffusion models (chapters 9 and 12)
    ssl_scales: tuple         # classifier-free guidance scales with cluster ids and labels (ch. 9)
    cluster_ks: tuple         # numbers of clusters whose statistics are compared (ch. 9)
    guided_ks: tuple          # numbers of clusters with a trained cluster-conditioned model (ch. 9)
    k_scales: tuple           # the guidance scales at which those models are compared (ch. 9)
    align_probe_ts: tuple     # timesteps at which the DiT's hidden states are probed (ch. 12)
    align_probe_sizes: tuple  # (training, test) images of those probes: larger than ch. 4's, for 1-point effects


PROFILES = {
    "quick": Profile(name="quick", device="cpu", n_samples=300, n_ref=2000, nfe_grid=(5, 10, 20),
                     ancestral_nfe=(100,), converged_nfe=50, guidance_scales=(1.0, 1.5, 2.0, 3.0, 5.0),
                     cg_scales=(0.0, 1.0, 3.0, 10.0), guidance_nfe=10, n_toy=3000, toy_steps=200,
                     probe_sizes=(2000, 1000), probe_ts=(0, 10, 50, 500), seg_labels=(5, 20, 100),
                     seg_ts=(10, 50, 150), seg_eval=300, dift_ensemble=2, hyper_steps=200,
                     dc_images=200, dc_draws=25, student_sizes=(6000, 5000), finetune_labels=(600,),
                     finetune_steps=300, ldae_sizes=(5000, 10000), augment_sizes=(10, 50, 300, 5000),
                     ssl_scales=(1.0, 1.5, 2.5), cluster_ks=(10,), guided_ks=(10, 50, 200), k_scales=(2.5,),
                     align_probe_ts=(50,), align_probe_sizes=(10000, 5000)),
    "full": Profile(name="full", device="cuda", n_samples=5000, n_ref=10000, nfe_grid=(5, 10, 20, 50),
                    ancestral_nfe=(20, 100, 200), converged_nfe=100,
                    guidance_scales=(1.0, 1.25, 1.5, 2.0, 3.0, 5.0), cg_scales=(0.0, 1.0, 3.0, 10.0, 30.0),
                    guidance_nfe=20, n_toy=10000, toy_steps=500,
                    probe_sizes=(10000, 5000), probe_ts=(0, 5, 10, 25, 50, 100, 200, 400, 700),
                    seg_labels=(5, 20, 100, 500), seg_ts=(10, 25, 50, 100, 150, 250, 400), seg_eval=1000,
                    dift_ensemble=8, hyper_steps=1500, dc_images=2000, dc_draws=100,
                    student_sizes=(6000, 10000), finetune_labels=(600, 6000), finetune_steps=1000,
                    ldae_sizes=(10000, 10000), augment_sizes=(10, 500, 1500, 10000),
                    ssl_scales=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0), cluster_ks=(10, 50, 200), guided_ks=(10, 50, 200),
                    k_scales=(1.5, 2.5, 4.0),
                    align_probe_ts=(10, 50, 200), align_probe_sizes=(20000, 10000)),
}


def resolve(name: str = "auto") -> str:
    """The profile name that `name` stands for: `auto` becomes `full` on CUDA, else `quick`."""
    if name == "auto":
        name = os.environ.get("DIFFREP_PROFILE") or ("full" if torch.cuda.is_available() else "quick")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} or 'auto'")
    return name


def get(name: str = "auto") -> Profile:
    """The profile `name` ('quick', 'full' or 'auto'), on the device it can run on here."""
    prof = PROFILES[resolve(name)]
    if prof.device == "cuda" and not torch.cuda.is_available():
        prof = replace(prof, device="cpu")  # a full run on a CPU is slow but allowed
    return prof


def device_for(name: str = "auto") -> str:
    """Where the profile's work runs here: the GPU for `full` when there is one, else the CPU."""
    return get(name).device
