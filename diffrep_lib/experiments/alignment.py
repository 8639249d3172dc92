"""Measuring representation alignment (ch. 12): training curves, REPA's speed-up, and what the DiT's hidden states
encode with and without it. Functions take names, not tensors, and are memoised where they are expensive.

    curve = alignment.curve("repa_dit_fmnist", profile)              # [{'step', 'fid', 'accuracy', ...}, ...]
    alignment.speedup(alignment.curve("dit_fmnist", profile), curve)  # baseline steps / steps to its final FID-FM
    alignment.hidden_probe("repa_dit_fmnist", profile, "trained", ts=(50,), sizes=(2000, 1000))
"""
from __future__ import annotations

import torch

from .. import zoo
from ..methods import repa
from ..readout import framework as fw
from ..support import memo
from ..support.profile import device_for
from .activations import BF16, network, probe_split

ARMS = {"baseline": "dit_fmnist", "REPA": "repa_dit_fmnist", "REPA, random teacher": "repa_random_dit_fmnist"}


def curve(name: str, profile: str) -> list[dict]:
    """The checkpoint curve recorded while `name` trained (FID-FM, sample accuracy, held-out loss every
    `curve_every` steps)."""
    rec = zoo.record(name, profile)
    if "curve" not in rec:
        raise KeyError(f"{name} was trained without a checkpoint curve (its recipe has curve_every=0)")
    return rec["curve"]


def speedup(baseline: list[dict], other: list[dict], key: str = "fid") -> dict:
    """REPA's headline number: the baseline's final value of `key`, the step at which `other` first reaches it
    (interpolated between checkpoints; None if never), and the ratio baseline steps / that step (> 1: faster)."""
    target, steps = baseline[-1][key], baseline[-1]["step"]
    reached = repa.steps_to_reach(other, target, key)
    return {"target": target, "baseline_steps": steps, "steps": reached,
            "ratio": steps / reached if reached else None}


def _hidden_probe(name, profile, control, ts, sizes, seed):
    device = device_for(profile)
    x, y, xt, yt = probe_split(sizes, seed)
    net = network(name, profile, control).to(device)
    layers = [f"blocks.{i}" for i in range(len(net.blocks))]
    vecs = fw.feature_vectors(net, torch.cat([x, xt]).to(device), ts, layers, seed=seed, bf16=BF16)
    # the probes run where the features were made (a GPU at full: 8 blocks x 4 models of 9,408-d features)
    tr, te = {k: v[:len(x)].to(device) for k, v in vecs.items()}, {k: v[len(x):].to(device) for k, v in vecs.items()}
    _, linear = fw.probe_grid(tr, y, te, yt, "linear")
    return {"linear": fw.as_table(linear, ts, layers)}


def hidden_probe(name: str, profile: str, control: str = "trained", *, ts, sizes: tuple, seed: int = 0) -> dict:
    """Linear-probe accuracy of a DiT's hidden tokens after every block (2x2-pooled, as in ch. 4) at each t:
    {'linear': (len(ts), depth)}. control 'trained' is the zoo model, 'random' the same DiT with random weights."""
    deps = (zoo.model_id(name, profile, init=control),)
    return memo.cached(_hidden_probe, name, profile, control, tuple(ts), tuple(sizes), seed, deps=deps)


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two representations of the same N inputs,
    (N, D1) and (N, D2): 1 when one is an orthogonal transform and rescaling of the other, near 0 when unrelated."""
    a, b = a - a.mean(0), b - b.mean(0)
    cross = (a.T @ b).pow(2).sum()
    return (cross / ((a.T @ a).pow(2).sum().sqrt() * (b.T @ b).pow(2).sum().sqrt())).item()
