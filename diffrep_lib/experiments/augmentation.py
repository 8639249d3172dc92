"""Generative augmentation (survey §3.1.6), by name and memoised: synthetic labelled sets from the zoo's
class-conditional U-Net (`methods.synthetic`) and a small CNN trained on few real labels, on synthetic images,
or on both, scored on validation and test images.

    synthetic_set("quick", per_class=50, scales=(2.0,))                  # {'x', 'y', 'scale'}, balanced, seeded
    learner_run("quick", real=10)                                         # 10 real images per class
    learner_run("quick", real=10, synthetic=50, scales=(2.0,))            # ... and 50 generated per class at s = 2
    learner_run("quick", real=10, augment=True)                           # ... or the real ones shifted and mirrored
    learner_run("quick", real=0, synthetic=50, scales=(1., 2., 3., 4., 5.))   # synthetic only, a scale per image

Splits (per seed): the real labelled images are the first `real` of each class in a seeded order of the training
images; the validation images (VALIDATION of them, where chapters choose a scale) are the last of that order and
never trained on; the test images are the first of the test split. The generator (`unet_fmnist`) was trained on
all training images and labels: it stands in for a large model trained elsewhere, as Stable Diffusion does for the
papers, and the learner never sees the test split through it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .. import zoo
from ..core import samplers
from ..core.precision import bf16_native
from ..core.sampling import sigma_grid
from ..data import fashion_mnist
from ..errors import InputError, bad, check_int
from ..methods.synthetic import generate_labelled, scales_per_image, shift_flip
from ..models.classifier import Classifier, ClassifierConfig
from ..support import memo
from ..support.profile import device_for, get, resolve
from ..support.runtime import inference_batch
from .activations import _train_order
from .generation import zoo_denoiser

GENERATOR = "unet_fmnist"         # the class-conditional U-Net of chapters 1-3 (label dropout 0.1)
SAMPLER = "dpmpp_2m"              # at the profile's guidance_nfe network evaluations per image
VALIDATION = 2000                 # labelled training images that choose, never trained on


@dataclass(frozen=True)
class LearnerConfig:
    """The discriminative learner: the evaluation classifier's architecture at half its width, trained from
    scratch with the same steps and batch in every arm, whatever its training set."""
    width: int = 16
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4


def _check_scales(scales) -> tuple:
    scales_per_image(1, scales, 0)          # the same checks, one error for all callers
    return tuple(float(s) for s in scales)


def _synthetic_set(profile, per_class, scales, seed, model_seed, bf16):
    device = device_for(profile)
    D = zoo_denoiser(GENERATOR, profile, model_seed).to(device)
    sigmas = sigma_grid(D, samplers.steps_for_nfe(SAMPLER, get(profile).guidance_nfe))
    return generate_labelled(D, per_class=per_class, scales=scales, seed=seed, sigmas=sigmas,
                             sampler=SAMPLER, batch=inference_batch(device), bf16=bf16, device=device)


def synthetic_set(profile: str, *, per_class: int, scales: tuple, seed: int = 0, model_seed: int = 0) -> dict:
    """A balanced synthetic labelled set from the zoo's class-conditional U-Net with classifier-free guidance, a
    scale drawn per image from `scales` (`methods.synthetic.generate_labelled`): {'x', 'y', 'scale'};
    memoised."""
    profile = resolve(profile)
    check_int(per_class, "per_class", "pass a positive number of images per class")
    check_int(seed, "seed", "pass a non-negative integer seed", low=0)
    scales = _check_scales(scales)
    bf16 = bf16_native(device_for(profile))
    return memo.cached(_synthetic_set, profile, per_class, scales, seed, model_seed, bf16,
                       deps=(zoo.model_id(GENERATOR, profile, model_seed),))


def splits(real: int, seed: int):
    """(x_real, y_real, x_val, y_val): the first `real` training images of each class in the seed's order, and
    the last VALIDATION images of that order (disjoint from every labelled subset)."""
    x, y = fashion_mnist.tensors("train")
    order = _train_order(seed)
    pool, val = order[:-VALIDATION], order[-VALIDATION:]
    picked = torch.cat([pool[y[pool] == c][:real] for c in range(10)]) if real else pool[:0]
    return x[picked], y[picked], x[val], y[val]


def train_learner(x, y, *, steps: int, seed: int, augment: bool = False, cfg: LearnerConfig = LearnerConfig(),
                  device: str = "cpu") -> Classifier:
    """A fresh CNN (initialised from `seed`) trained for `steps` AdamW steps of cross-entropy on batches drawn
    uniformly from (x, y), with `shift_flip` applied to every batch if `augment`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Classifier(ClassifierConfig(width=cfg.width)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (cfg.batch,), generator=g)
        xb = shift_flip(x[idx], g) if augment else x[idx]
        loss = F.cross_entropy(net(xb.to(device)), y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def _hits(net, x, y, device, batch: int = 1000) -> torch.Tensor:
    return torch.cat([net(x[i:i + batch].to(device)).argmax(1).cpu() == y[i:i + batch]
                      for i in range(0, len(x), batch)])


def _learner_run(profile, real, synthetic, scales, augment, seed, model_seed, steps, n_test):
    device = device_for(profile)
    xr, yr, xv, yv = splits(real, seed)
    xs, ys = [xr], [yr]
    if synthetic:
        s = synthetic_set(profile, per_class=synthetic, scales=scales, seed=seed, model_seed=model_seed)
        xs.append(s["x"])
        ys.append(s["y"])
    x, y = torch.cat(xs), torch.cat(ys)
    t0 = time.perf_counter()
    net = train_learner(x, y, steps=steps, seed=seed, augment=augment, device=device)
    xt, yt = fashion_mnist.tensors("test")
    hits = _hits(net, xt[:n_test], yt[:n_test], device)
    per_class = torch.stack([hits[yt[:n_test] == c].float().mean() for c in range(10)])
    return {"test": hits.float().mean().item(), "test_hits": hits, "per_class": per_class,
            "val": _hits(net, xv, yv, device).float().mean().item(), "train_images": len(x),
            "seconds": time.perf_counter() - t0}


def learner_run(profile: str, *, real: int, synthetic: int = 0, scales: tuple = (2.0,), augment: bool = False,
                seed: int = 0, model_seed: int = 0) -> dict:
    """The learner (`train_learner`, the profile's steps) trained on `real` real images per class plus `synthetic`
    generated images per class (`synthetic_set` at `scales`, drawn with this seed), optionally with shift_flip:
    {'test', 'test_hits' (n_test,), 'per_class' (10,), 'val', 'train_images', 'seconds'}. Memoised."""
    profile = resolve(profile)
    for name, value in (("real", real), ("synthetic", synthetic)):
        check_int(value, name, "pass a non-negative number of images per class", low=0)
    if real + synthetic == 0:
        raise bad(InputError, "real", real, "train on something: pass real > 0 or synthetic > 0")
    check_int(seed, "seed", "pass a non-negative integer seed", low=0)
    scales = _check_scales(scales) if synthetic else ()
    sizes = get(profile).augment_sizes
    deps = (zoo.model_id(GENERATOR, profile, model_seed),) if synthetic else ()
    return memo.cached(_learner_run, profile, real, synthetic, scales, bool(augment), seed, model_seed,
                       sizes[2], sizes[3], deps=deps)
