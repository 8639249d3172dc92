"""Knowledge transfer out of a diffusion model (survey §3.1.3), by name and memoised: the Diffusion Classifier's error
tables (Li et al. 2023) on Fashion-MNIST test images, and the evaluation of encoders distilled from a diffusion
model (DreamTeacher, Li et al. 2023; `methods.distill`).

    tab = classifier_errors("unet_fmnist", "quick", n=300, k=25)
    dr.diffusion_classifier.classify(tab["table"])        # positions in tab["classes"]
    frozen_probe("distill_unet_t10", "quick", sizes=(6000, 5000))      # linear probe and k-NN, encoder frozen
    finetune("distill_unet_t10", "quick", labels=600, steps=300, n_test=5000)   # the encoder trained on 1% labels

One table (images x classes x draws) answers every question of the number of draws, of a window of timesteps and
of elimination; the wall time it took is kept with it, so that seconds per image can be stated from a measurement.
An encoder (`models.Encoder`, from `zoo.load`) is read through its pooled embedding; `init='random'` gives the same
architecture untrained, which is also where the from-scratch student of a fine-tune starts.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from .. import zoo
from ..core.precision import bf16_autocast, bf16_native
from ..data import fashion_mnist
from ..errors import InputError, bad
from ..readout import diffusion_classifier as dc
from ..readout import probes
from ..support import memo
from ..support.profile import device_for, resolve
from ..support.runtime import progress_enabled
from .activations import probe_split

LABELS = ("class", "null")
BF16 = True                                      # the network in bfloat16 autocast where native (errors in fp32)
# every few-label fine-tune, whatever the encoder: linear probe, then fine-tune (LP-FT, Kumar et al. 2022). BatchNorm's
# statistics are recomputed on the labelled images first (an untrained encoder has none of its own, a trained one
# those of its own training), the head starts as the linear probe of the frozen encoder's embeddings, then AdamW
# trains encoder and head together on batches drawn with replacement from the labelled images, BatchNorm in training
# mode, and the statistics are recomputed once more before scoring. Chosen on validation images of the training
# split, disjoint from every labelled subset (chapter 5 gives the candidates and the choice).
FINETUNE = {"batch": 64, "lr": 1e-3, "weight_decay": 1e-4}
ENCODER_TASKS = ("distill", "contrastive", "contrastive_generated")   # the zoo's encoders: students, SimCLR
# the encoders' weights and batches in channels-last layout: on two CPU cores in bf16 a fine-tune step of the
# students' architecture (batch 64) took 38 ms instead of 49, and reading 2,000 images 0.32 s instead of 0.37
LAYOUT = torch.channels_last


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


# ------------------------------------------------------------------------------------------ distilled students

def _check_encoder(model, profile, init, model_seed):
    profile = resolve(profile)
    if init not in zoo.INITS:
        raise bad(InputError, "init", init, f"choose one of {zoo.INITS}")
    if zoo.recipes.get(model, profile).task not in ENCODER_TASKS:
        raise bad(InputError, "model", model, f"pass a zoo encoder, trained with one of the tasks {ENCODER_TASKS} "
                  "(e.g. 'distill_unet_t10' or 'simclr_fmnist')")
    return profile, (zoo.model_id(model, profile, model_seed, init=init),)


def _encoder(model, profile, model_seed, init, device):
    """A zoo encoder (`models.Encoder`) in float32 on the device, in the `LAYOUT` its batches come in."""
    return zoo.load(model, profile, model_seed, init=init).float().to(device, memory_format=LAYOUT)


def _on(x: torch.Tensor, device) -> torch.Tensor:
    """A batch of images on the device in the encoders' `LAYOUT`."""
    return x.to(device).contiguous(memory_format=LAYOUT)


@torch.no_grad()
def recompute_batchnorm(net: nn.Module, x: torch.Tensor, device, batch: int = 500, bf16: bool = False) -> None:
    """Set every BatchNorm layer's running statistics to those of its input over the images x, as evaluation will
    read them: the network in training mode without gradient, each layer's batch means and variances averaged with
    equal weight over batches of at most `batch` images, split as evenly as possible (PyTorch's cumulative average,
    momentum None); with batches of equal size the mean is the exact mean over x. bf16: the convolutions in
    bfloat16 autocast, as the features are then read (the statistics stay float32; they move by under 1%)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training, momenta = net.training, [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    size = -(-len(x) // -(-len(x) // batch))            # as many batches as `batch` needs, of (nearly) equal size
    with bf16_autocast(device, bf16):
        for i in range(0, len(x), size):
            net(_on(x[i:i + size], device))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    net.train(was_training)


@torch.no_grad()
def _embed(enc, x: torch.Tensor, device, bf16: bool, batch: int = 500) -> torch.Tensor:
    with bf16_autocast(device, bf16):
        return torch.cat([enc.pooled(_on(x[i:i + batch], device)).float().cpu() for i in range(0, len(x), batch)])


def _frozen_probe(model, profile, init, model_seed, sizes, seed, bf16):
    device = device_for(profile)
    x, y, xt, yt = probe_split(sizes, seed)
    enc = _encoder(model, profile, model_seed, init, device)
    recompute_batchnorm(enc, x, device, bf16=bf16)
    f = _embed(enc.eval(), torch.cat([x, xt]), device, bf16)
    tr, te = f[:len(x)], f[len(x):]
    head = probes.fit_linear_head(tr, y, classes=10)
    with torch.no_grad():
        hits = head(te).argmax(1) == yt
    return {"linear": hits.float().mean().item(), "linear_hits": hits, "knn": probes.knn_accuracy(tr, y, te, yt),
            "n_train": len(x), "n_test": len(xt)}


def frozen_probe(model: str, profile: str, *, init: str = "trained", sizes: tuple, seed: int = 0,
                 model_seed: int = 0) -> dict:
    """Linear probe and k-NN (k = 20) of a zoo encoder's pooled embedding, the encoder frozen (its BatchNorm
    statistics recomputed on the probe's training images), on `activations.probe_split(sizes, seed)`:
    {'linear', 'linear_hits' (n_test,) bool, 'knn', 'n_train', 'n_test'}. init='random': the same architecture
    untrained. model_seed: the encoder's training seed (0: the shipped one at quick; another is
    trained on first use). Memoised."""
    profile, deps = _check_encoder(model, profile, init, model_seed)
    bf16 = BF16 and bf16_native(device_for(profile))
    return memo.cached(_frozen_probe, model, profile, init, model_seed, tuple(sizes), seed, bf16, deps=deps)


def _finetune(model, profile, init, model_seed, labels, steps, n_test, seed, bf16):
    device = device_for(profile)
    x, y, xt, yt = probe_split((labels, n_test), seed)
    g = torch.Generator().manual_seed(seed)
    enc = _encoder(model, profile, model_seed, init, device)
    recompute_batchnorm(enc, x, device, bf16=bf16)
    enc.eval()
    head = probes.fit_linear_head(_embed(enc, x, device, bf16), y, classes=10).to(device)    # LP: the probe

    @torch.no_grad()
    def test_hits():
        with bf16_autocast(device, bf16):
            pred = torch.cat([head(enc.pooled(_on(xt[a:a + 500], device))).argmax(1).cpu()
                              for a in range(0, n_test, 500)])
        return pred == yt

    probe_hits = test_hits()
    enc.requires_grad_(True).train()                                                        # FT: all of it
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=FINETUNE["lr"],
                            weight_decay=FINETUNE["weight_decay"])
    bar = None
    if progress_enabled() and steps:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=f"fine-tune {model} ({init}, {labels} labels)", unit="step", leave=False)
    t0 = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(len(x), (FINETUNE["batch"],), generator=g)
        with bf16_autocast(device, bf16):
            logits = head(enc.pooled(_on(x[i], device)))
        loss = F.cross_entropy(logits.float(), y[i].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar:
            bar.update()
    seconds = time.perf_counter() - t0
    if bar:
        bar.close()
    if steps:
        recompute_batchnorm(enc, x, device, bf16=bf16)
    enc.eval()
    hits = test_hits()
    return {"accuracy": hits.float().mean().item(), "hits": hits, "probe_accuracy": probe_hits.float().mean().item(),
            "probe_hits": probe_hits, "labels": labels, "steps": steps, "seconds": seconds}


def finetune(model: str, profile: str, *, init: str = "trained", labels: int, steps: int, n_test: int,
             seed: int = 0, model_seed: int = 0) -> dict:
    """A few-label fine-tune of a zoo encoder on the first `labels` images of `activations.probe_split`'s seeded
    order, scored on the first `n_test` test images: BatchNorm statistics recomputed on those images
    (`recompute_batchnorm`), a linear head on the frozen pooled embedding (the linear probe,
    `probes.fit_linear_head`), then encoder and head trained together for `steps` steps (`FINETUNE`: AdamW,
    batch 64 drawn with replacement; 0: the probe alone) and the statistics recomputed again.
    init='random' starts from the untrained architecture: the student trained on the labels alone. model_seed: as
    in `frozen_probe`.
    {'accuracy', 'hits' (n_test,) bool, 'probe_accuracy', 'probe_hits' (the head before any fine-tune step),
    'labels', 'steps', 'seconds'}. Memoised."""
    profile, deps = _check_encoder(model, profile, init, model_seed)
    n_train, n_tests = (len(fashion_mnist.tensors(split)[0]) for split in ("train", "test"))
    for name, value, low, high in (("labels", labels, 2, n_train), ("steps", steps, 0, None),
                                   ("n_test", n_test, 1, n_tests)):
        if not isinstance(value, int) or value < low or (high is not None and value > high):
            raise bad(InputError, name, value, f"pass an integer from {low}{f' to {high}' if high else ''}")
    bf16 = BF16 and bf16_native(device_for(profile))
    return memo.cached(_finetune, model, profile, init, model_seed, labels, steps, n_test, seed, bf16, deps=deps)
