"""Knowledge transfer out of a diffusion model (survey §3.1.3), by name and memoised: the Diffusion Classifier's error
tables (Li et al. 2023) on Fashion-MNIST test images.

    tab = classifier_errors("unet_fmnist", "quick", n=300, k=25)
    dr.diffusion_classifier.classify(tab["table"])        # positions in tab["classes"]

One table (images x classes x draws) answers every question of the number of draws, of a window of timesteps and
of elimination; the wall time it took is kept with it, so that seconds per image can be stated from a measurement.
"""
from __future__ import annotations

import time

import torch

from .. import zoo
from ..core.precision import bf16_autocast, bf16_native
from ..data import fashion_mnist
from ..errors import InputError, bad
from ..readout import diffusion_classifier as dc
from ..support import memo
from ..support.profile import device_for, resolve
from ..support.runtime import progress_enabled

LABELS = ("class", "null")
BF16 = True                                      # the network in bfloat16 autocast where native (errors in fp32)


def test_images(n: int, offset: int = 0):
    """Test images offset .. offset + n of Fashion-MNIST with their labels: (x (n, 1, 28, 28) in [-1, 1], y (n,))."""
    x, y = fashion_mnist.tensors("test")
    if not isinstance(n, int) or not 1 <= n <= len(x) - offset:
        raise bad(InputError, "n", n, f"pass a number of test images from 1 to {len(x) - offset}")
    return x[offset:offset + n], y[offset:offset + n]


def _classifier_errors(model, profile, n, k, paired, label, loss, seed, offset, bf16, init):
    device = device_for(profile)
    D = zoo.denoiser(model, profile, init=init).to(device)
    x, y = test_images(n, offset)
    null = D.net.null_label
    classes = list(range(null)) if label == "class" else [null] * null
    bar = None
    if progress_enabled():
        from tqdm.auto import tqdm
        bar = tqdm(total=n * len(classes) * k, desc=f"diffusion classifier ({model}, K={k})", unit="eval",
                   leave=False)
    t0 = time.perf_counter()
    ts = dc.stratified_timesteps(k, len(D.sigmas))
    with bf16_autocast(device, bf16):
        table = dc.error_table(D, x.to(device), classes, ts, seed=seed, paired=paired, loss=loss,
                               progress=bar.update if bar else None)
    seconds = time.perf_counter() - t0
    if bar:
        bar.close()
    return {"table": table.cpu(), "y": y, "classes": torch.tensor(classes), "ts": ts,
            "seconds": seconds, "evaluations": n * len(classes) * k, "device": str(device), "bf16": bf16}


def classifier_errors(model: str, profile: str, *, n: int, k: int, paired: bool = True, label: str = "class",
                      loss: str = "l2", seed: int = 0, offset: int = 0, init: str = "trained") -> dict:
    """The Diffusion Classifier's error table of a class-conditional zoo model on n test images (from `offset`):
    {'table' (n, C, k), 'y' (n,), 'classes' (C,), 'ts' (k,), 'seconds', 'evaluations', 'device', 'bf16'}.
    k draws on the stratified grid (`diffusion_classifier.stratified_timesteps`), noise from `seed`, shared by
    every class when `paired`. label 'class' scores the ten classes; 'null' scores the null label ten times (a
    sanity check: with paired=False its ranking is the Monte Carlo noise alone, at chance by construction).
    init='random' reads the same architecture with random weights (the control). Memoised."""
    if label not in LABELS:
        raise bad(InputError, "label", label, f"choose one of {LABELS}")
    profile = resolve(profile)
    bf16 = BF16 and bf16_native(device_for(profile))       # the precision actually used enters the memo key
    if init not in zoo.INITS:
        raise bad(InputError, "init", init, f"choose one of {zoo.INITS}")
    return memo.cached(_classifier_errors, model, profile, n, k, bool(paired), label, loss, seed, offset, bf16, init,
                       deps=(zoo.model_id(model, profile, init=init),))
