"""Reconstructing diffusion models (survey §3.1.4), by name and memoised: the linear probe and k-NN of l-DAE's
encoder (Chen et al. 2024; `methods.ldae`) on Fashion-MNIST, and the same probes of the raw pixels.

    ldae_probe("ldae_d8", "quick", sizes=(5000, 5000))              # trained encoder, half of the DiT's blocks
    ldae_probe("ldae_d8", "quick", sizes=(5000, 5000), init="random") # the same architecture, random weights
    ldae_depth("ldae_d8", "quick", sizes=(5000, 5000))              # {blocks: scores} after every block
    pixel_probe(sizes=(5000, 5000))                                   # no network: the 784 pixels
    input_probe("ldae_d8", "quick", sizes=(5000, 5000))             # no network: the image through the latent

Every probe is fitted on `activations.probe_split(sizes, seed)` (a seeded subset of training images and the first
test images) and also scored on `activations.validation_split`, training images disjoint from the probe's, which
is where a chapter makes its choices (of d, of a block). The per-image hits on the test images come back too, for
paired standard errors between two encoders scored on the same images.
"""
from __future__ import annotations

import time

import torch

from .. import zoo
from ..errors import InputError, bad
from ..methods import ldae
from ..readout import probes
from ..support import memo
from ..support.profile import device_for, resolve
from .activations import probe_split, validation_split


def _scores(feats, y, val_y, test_y) -> dict:
    """Linear probe (test hits, validation accuracy) and k-NN of features stacked as (train, validation, test)."""
    n, v = len(y), len(val_y)
    tr, va, te = feats[:n], feats[n:n + v], feats[n + v:]
    head = probes.fit_linear_head(tr, y, classes=10)
    with torch.no_grad():
        hits, val_hits = head(te).argmax(1) == test_y, head(va).argmax(1) == val_y
    return {"linear": hits.float().mean().item(), "linear_hits": hits, "val_linear": val_hits.float().mean().item(),
            "knn": probes.knn_accuracy(tr, y, te, test_y), "n_test": len(test_y)}


def _check(model, profile, init) -> str:
    profile = resolve(profile)
    if init not in zoo.INITS:
        raise bad(InputError, "init", init, f"choose one of {zoo.INITS}")
    if zoo.recipes.get(model, profile).task != "ldae":
        raise bad(InputError, "model", model, "pass an l-DAE of the zoo (task 'ldae'), e.g. 'ldae_d8'")
    return profile


def _network(model, profile, init, model_seed):
    """The zoo's l-DAE, or (init='random') its architecture with random weights and the trained model's tokenizer:
    the tokenizer is fitted to the data, not learned, so the control reads the same input."""
    net = zoo.load(model, profile, model_seed, init=init).float().eval()
    if init == "random":
        net.tokenizer.load_state_dict(zoo.load(model, profile, model_seed).tokenizer.state_dict())
    return net.to(device_for(profile))


def _ldae_probe(model, profile, init, blocks, sizes, seed, model_seed, t, input):
    x, y, xt, yt = probe_split(sizes, seed)
    xv, yv = validation_split(sizes, seed)
    net = _network(model, profile, init, model_seed)
    t0 = time.perf_counter()
    feats = ldae.representation(net, torch.cat([x, xv, xt]), blocks=blocks, t=t, input=input)
    return {**_scores(feats, y, yv, yt), "blocks": blocks or net.encoder_blocks,
            "seconds": time.perf_counter() - t0}


def ldae_probe(model: str, profile: str, *, sizes: tuple, seed: int = 0, init: str = "trained",
               blocks: int | None = None, model_seed: int = 0, t: int = ldae.READ_T,
               input: str = "latent") -> dict:
    """The frozen l-DAE encoder's pooled tokens (`methods.ldae.representation`: the clean image through the
    latent (input='image': the raw image), timestep t, the first `blocks` DiT blocks, by default half) probed:
    {'linear', 'linear_hits' (n_test,), 'val_linear', 'knn', 'n_test', 'blocks', 'seconds'}. init='random'
    reads the architecture with random weights (and the model's tokenizer); `model_seed` another training seed of
    the model (trained on first use). Memoised."""
    profile = _check(model, profile, init)
    if input not in ldae.INPUTS:
        raise bad(InputError, "input", input, f"choose one of {ldae.INPUTS}")
    return memo.cached(_ldae_probe, model, profile, init, blocks, tuple(sizes), seed, model_seed, int(t), input,
                       deps=(zoo.model_id(model, profile, model_seed, init=init),))


def _ldae_depth(model, profile, init, sizes, seed, model_seed):
    x, y, xt, yt = probe_split(sizes, seed)
    xv, yv = validation_split(sizes, seed)
    net = _network(model, profile, init, model_seed)
    feats = ldae.block_features(net, torch.cat([x, xv, xt]), range(1, len(net.dit.blocks) + 1))
    scores = [_scores(feats[k], y, yv, yt) for k in sorted(feats)]
    return {"blocks": sorted(feats), "linear_hits": torch.stack([s["linear_hits"] for s in scores]),
            **{key: [s[key] for s in scores] for key in ("linear", "val_linear", "knn", "n_test")}}


def ldae_depth(model: str, profile: str, *, sizes: tuple, seed: int = 0, init: str = "trained",
               model_seed: int = 0) -> dict:
    """`ldae_probe`'s scores after every DiT block, from one pass over the images: {blocks: scores}. Memoised."""
    profile = _check(model, profile, init)
    flat = memo.cached(_ldae_depth, model, profile, init, tuple(sizes), seed, model_seed,
                       deps=(zoo.model_id(model, profile, model_seed, init=init),))
    return {k: {"linear_hits": flat["linear_hits"][i], **{key: flat[key][i] for key in
                                                          ("linear", "val_linear", "knn", "n_test")}}
            for i, k in enumerate(flat["blocks"])}


def _input_probe(model, profile, sizes, seed):
    x, y, xt, yt = probe_split(sizes, seed)
    xv, yv = validation_split(sizes, seed)
    net = zoo.load(model, profile).float()
    with torch.no_grad():
        images = ldae.clean_input(net, torch.cat([x, xv, xt]))
    return _scores(images.flatten(1), y, yv, yt)


def input_probe(model: str, profile: str, *, sizes: tuple, seed: int = 0) -> dict:
    """The same probes on what the l-DAE's encoder reads, without the encoder: the pixels of the clean image
    through its latent, V_d^T V_d x (for d = D the image itself). The control for how much of the class the input
    still carries at each d. Memoised."""
    profile = _check(model, profile, "trained")
    return memo.cached(_input_probe, model, profile, tuple(sizes), seed, deps=(zoo.model_id(model, profile),))


def _pixel_probe(sizes, seed):
    x, y, xt, yt = probe_split(sizes, seed)
    xv, yv = validation_split(sizes, seed)
    return _scores(torch.cat([x, xv, xt]).flatten(1), y, yv, yt)


def pixel_probe(*, sizes: tuple, seed: int = 0) -> dict:
    """The same probes on the raw pixels (784 values an image): the control without any network. Memoised."""
    return memo.cached(_pixel_probe, tuple(sizes), seed)
