"""Golden outputs: a fixed input and a short fingerprint of a model's output on it. The zoo stores the fingerprint
with every shipped model, and `zoo.verify` checks that today's code still computes it (a refactor that changes
behaviour is caught without retraining)."""
from __future__ import annotations

import torch

from . import registry
from .recipes import Recipe


def golden_input(r: Recipe, n: int = 4):
    """A fixed input for the model of recipe r: (x, t, y) drawn from a seeded generator."""
    g = torch.Generator().manual_seed(1234)
    cfg = r.model
    shape = (n, cfg.in_channels, 28, 28) if hasattr(cfg, "in_channels") else (n, cfg.dim)
    x = torch.randn(shape, generator=g)
    t = torch.tensor([10.0, 250.0, 500.0, 900.0])[:n]
    k = getattr(cfg, "num_classes", None)
    y = torch.tensor([0, 3, 7, k]).clamp(max=k)[:n] if k else None      # k: the null id; fewer classes: clamped
    return x, t, y


@torch.no_grad()
def golden_output(model, r: Recipe) -> list[float]:
    """Per-sample mean and standard deviation of the model's output on the golden input (called the way its
    method calls it)."""
    x, t, y = golden_input(r)
    out = registry.method(r.task).call(model, x, t, y).flatten(1).double()
    return [round(v, 7) for v in torch.stack([out.mean(1), out.std(1)], 1).flatten().tolist()]
