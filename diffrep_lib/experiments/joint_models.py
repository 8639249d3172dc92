"""Joint diffusion models (survey §3.1.5; ch. 7), by name and memoised: the classifier heads of the zoo's joint
U-Nets (`methods.joint`) read on validation and test images, and a linear probe on the frozen encoder of the
diffusion model alone, fitted on the same labelled images.

    head_outputs("joint_unet_a1e-2", "quick", "test")           # {'probs': (10000, 10), 'y': (10000,)}
    head_outputs("joint_unet_a1e-3", "quick", "validation", seed=1)   # the arm's second training run
    probe_outputs("joint_unet_probe", "quick", "test")           # linear probe on its frozen pooled features

The arms (`ARMS`) differ only in their recipe options: the weight alpha of the cross-entropy, whether the
denoising loss is kept, whether the head's gradient reaches the encoder, and whether the network starts from the
unconditional U-Net. A training seed's arms all saw the same LABELS labelled images
(`methods.joint.labelled_subset` of that seed). The validation images are VALIDATION other training images, never
labelled for training: they choose alpha. The test images are all 10,000 of the test split.
"""
from __future__ import annotations

import torch

from .. import zoo
from ..data import fashion_mnist
from ..errors import InputError, bad
from ..methods.joint import labelled_subset
from ..readout import probes
from ..support import memo
from ..zoo import recipes

JOINT = {f"alpha = {a:g}": f"joint_unet_a{tag}" for tag, a in recipes.JOINT_ALPHAS.items()}
CONTROLS = {"diffusion alone, MLP head": "joint_unet_probe",        # the head on detached features
            "fine-tuned with CE alone": "joint_unet_finetune",      # same start, no denoising loss
            "classifier alone": "joint_unet_classifier"}            # random start, no denoising loss
ARMS = {**JOINT, **CONTROLS}
TEACHER = "unet_fmnist_uncond"       # where every arm but the classifier alone starts
LABELS = 600                         # the labelled subset of every arm (recipe option 'labels')
VALIDATION = 2000
SPLITS = ("validation", "test")
BATCH = 64                           # images per forward pass: on two cores 1.5x faster than 500 (float32)


def validation_split(seed: int = 0, n: int = VALIDATION):
    """(x, y): n training images outside training seed `seed`'s labelled subset (the last n of a seeded order)."""
    x, y = fashion_mnist.tensors("train")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + seed))
    idx = order[~torch.isin(order, labelled_subset(LABELS, seed))][-n:]
    return x[idx], y[idx]


def _images(split: str, seed: int):
    return validation_split(seed) if split == "validation" else fashion_mnist.tensors("test")


def _check(name: str, split: str) -> None:
    """The arguments of head_outputs and probe_outputs, checked before anything is loaded."""
    if name not in ARMS.values():
        raise bad(InputError, "name", name, f"pass a joint model: one of {sorted(ARMS.values())}")
    if split not in SPLITS:
        raise bad(InputError, "split", split, f"choose one of {SPLITS}")


def _head_outputs(name: str, profile: str, split: str, seed: int) -> dict:
    model = zoo.get(name, profile, seed).eval()
    x, y = _images(split, seed)
    with torch.no_grad():
        logits = torch.cat([model.classify(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]).float()
    return {"probs": logits.softmax(1), "y": y}


def head_outputs(name: str, profile: str, split: str = "test", seed: int = 0) -> dict:
    """The class probabilities of a joint model's head at t = 0 (training seed `seed`) on its validation images or
    all 10,000 test images: {'probs': (N, 10), 'y': (N,)}; memoised."""
    _check(name, split)
    return memo.cached(_head_outputs, name, profile, split, seed, deps=(zoo.model_id(name, profile, seed),))


def _pooled(model, x):
    with torch.no_grad():
        return torch.cat([model.pooled(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def _probe_outputs(name: str, profile: str, split: str, seed: int) -> dict:
    model = zoo.get(name, profile, seed).eval()
    x_train, y_train = fashion_mnist.tensors("train")
    idx = labelled_subset(LABELS, seed)
    head = probes.fit_linear_head(_pooled(model, x_train[idx]), y_train[idx])
    x, y = _images(split, seed)
    with torch.no_grad():
        return {"probs": head(_pooled(model, x)).float().softmax(1), "y": y}


def probe_outputs(name: str, profile: str, split: str = "test", seed: int = 0) -> dict:
    """A linear probe (`probes.fit_linear_head`: standardised features, the book's probe) on the frozen pooled
    encoder features that the head of `name` reads, fitted on the same LABELS labelled images: the readout Chapter 4
    would give the network. {'probs', 'y'} on the validation or test images; memoised."""
    _check(name, split)
    return memo.cached(_probe_outputs, name, profile, split, seed, deps=(zoo.model_id(name, profile, seed),))
