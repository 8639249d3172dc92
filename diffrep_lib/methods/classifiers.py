"""Classifiers as zoo methods: the evaluation classifier of FID-FM and sample accuracy (clean images; ch. 1) and
the noise-aware classifier p(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021, §4; ch. 3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import data
from ..core import forward_process
from ..zoo import recipes, registry


def classification_terms(net, x, y, **_) -> dict:
    """Cross-entropy of a classifier on clean images, per sample."""
    return {"ce": F.cross_entropy(net(x), y, reduction="none")}


def noisy_classification_terms(net, x0, y, *, abar, generator=None, t=None, **_) -> dict:
    """Cross-entropy of a noise-aware classifier on images noised at t ~ U{0..T-1}, per sample."""
    if t is None:
        t = torch.randint(0, len(abar), (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    x_t = forward_process.q_sample(x0, t, abar, eps)
    return {"ce": F.cross_entropy(net(x_t, t), y, reduction="none")}


@torch.no_grad()
def test_accuracy(model, r) -> dict:
    x, y = data.held_out(r.data)
    return {"test_accuracy": round((model(x).argmax(1) == y).float().mean().item(), 4)}


@torch.no_grad()
def noisy_test_accuracy(model, r) -> dict:
    """Held-out accuracy on images noised at t = 0, 250, 500 and 750 (fixed noise)."""
    x, y = data.held_out(r.data)
    abar, g, acc = recipes.abar(r), torch.Generator().manual_seed(99), {}
    for t in (0, 250, 500, 750):
        tt = torch.full((len(x),), t)
        x_t = forward_process.q_sample(x, tt, abar, torch.randn(x.shape, generator=g))
        acc[f"test_accuracy_t{t}"] = round((model(x_t, tt).argmax(1) == y).float().mean().item(), 4)
    return acc


registry.register(registry.METHODS, "classify", registry.Method(
    terms=classification_terms, evaluate=test_accuracy, call=lambda model, x, t, y: model(x)))
registry.register(registry.METHODS, "classify_noisy", registry.Method(
    terms=noisy_classification_terms, evaluate=noisy_test_accuracy, call=lambda model, x, t, y: model(x, t)))
