"""Toy 2-D distributions, each a Gaussian mixture so that its exact denoiser and score are known in
closed form (`denoisers.gaussian_mixture_denoiser`); used for pictures of scores, SDEs and ODE flows (ch. 1).
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError, bad, check_int

Tensor = torch.Tensor


def _check_name(name) -> None:
    if not isinstance(name, str) or name not in TOYS:
        raise bad(InputError, "name", name, f"choose one of {sorted(TOYS)}", why="unknown toy distribution")




def _ring(radius: float, k: int, std: float, centre=(0.0, 0.0), start=0.0, stop=2 * math.pi):
    angles = torch.linspace(start, stop, k + 1, dtype=torch.float64)[:-1] if stop - start >= 2 * math.pi - 1e-9 \
        else torch.linspace(start, stop, k, dtype=torch.float64)
    means = torch.stack([centre[0] + radius * angles.cos(), centre[1] + radius * angles.sin()], dim=1)
    return means, torch.full((k,), std, dtype=torch.float64)


def _eight_gaussians():
    return _ring(2.0, 8, 0.15)


def _rings():
    m1, s1 = _ring(2.0, 40, 0.08)
    m2, s2 = _ring(1.0, 20, 0.08)
    return torch.cat([m1, m2]), torch.cat([s1, s2])


def _moons():
    m1, s1 = _ring(1.0, 24, 0.07, centre=(-0.5, -0.25), start=0.0, stop=math.pi)
    m2, s2 = _ring(1.0, 24, 0.07, centre=(0.5, 0.25), start=math.pi, stop=2 * math.pi)
    return torch.cat([m1, m2]) * 1.5, torch.cat([s1, s2]) * 1.5


def mixture(name: str) -> tuple[Tensor, Tensor, Tensor]:
    """(means (K, 2), covariances (K, 2, 2), weights (K,)) of the toy distribution `name`, float64."""
    _check_name(name)
    means, stds = TOYS[name]()
    covs = stds[:, None, None] ** 2 * torch.eye(2, dtype=torch.float64)
    return means, covs, torch.full((len(means),), 1.0 / len(means), dtype=torch.float64)


def sample(name: str, n: int, *, generator=None) -> Tensor:
    """n points (n, 2), float32, drawn from the toy distribution `name`."""
    means, covs, weights = mixture(name)
    n = check_int(n, "n", low=1, fix="pass the number of points to draw, e.g. sample(name, 1000)")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise bad(InputError, "generator", generator, "pass a torch.Generator (e.g. "
                  "torch.Generator().manual_seed(0)) or None for torch's global one")
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    chol = torch.linalg.cholesky(covs)
    return (means[k] + (chol[k] @ z[..., None]).squeeze(-1)).float()


def load(name: str, n: int, seed: int = 0):
    """n points of the toy distribution as a `datasets.Dataset` with a column x (2 floats)."""
    import datasets

    _check_name(name)
    n = check_int(n, "n", low=1, fix="pass the number of points to draw, e.g. load(name, 1000)")
    seed = check_int(seed, "seed", low=None, fix="pass an integer seed, e.g. load(name, n, seed=0)")
    g = torch.Generator().manual_seed(seed)
    return datasets.Dataset.from_dict({"x": sample(name, n, generator=g).numpy()})


TOYS = {"8gaussians": _eight_gaussians, "rings": _rings, "moons": _moons}
