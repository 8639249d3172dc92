"""Diffusion Classifier (Li et al. 2023, survey §3.1.3): a class-conditional diffusion model read as a classifier
through Bayes' rule, with no training.

With a uniform prior, p(c | x) is proportional to p(x | c), and the diffusion ELBO bounds log p(x | c) by the
expected denoising error under the class c. Li et al. estimate that error by Monte Carlo over K draws (t_k, eps_k)
and take the class with the lowest mean error,

    c_hat = argmin_c  (1/K) sum_k || eps_k - eps_theta(sqrt(abar_{t_k}) x + sqrt(1 - abar_{t_k}) eps_k, t_k, c) ||^2,

with three details that matter: the draws are *shared by every class* (a paired comparison: the noise cancels in
the differences between classes), the timesteps are a stratified grid rather than random, and the scores are plain
means over draws (no ELBO weights). Candidates can be eliminated in stages: a few draws for every class, then more
draws only for the classes that survive.

Everything here goes through the denoiser contract D(x, sigma, cond) -> x0_hat (VE scaling, x = x0 + sigma eps):
the eps-error of a draw is || (D(x, sigma, c) - x0) / sigma ||^2, which equals an eps-prediction network's error and
serves any parameterisation. The functions are pure over an error table (images x classes x draws), so that one
table answers every question of K, windows and elimination.
"""
from __future__ import annotations

import torch

from ..errors import InputError, bad
from ..support.runtime import feature_batch

Tensor = torch.Tensor
LOSSES = ("l2", "l1")


def stratified_timesteps(n: int, T: int = 1000) -> Tensor:
    """Li et al.'s grid of n timesteps: the midpoints of n equal strata of [0, T), t_k = T//n//2 + k * (T//n)."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= T:
        raise bad(InputError, "n", n, f"pass a number of timesteps from 1 to {T}")
    return torch.arange(T // n // 2, T, T // n)[:n]


def subgrid(k_total: int, k: int) -> Tensor:
    """The positions of k draws spread evenly over a grid of k_total (the official code's stages: each stage
    takes every (k_total // k)-th draw, starting half a stride in), so that a table of k_total draws answers every
    smaller K without new draws."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= k_total:
        raise bad(InputError, "k", k, f"pass a number of draws from 1 to {k_total}")
    stride = k_total // k
    return torch.arange(stride // 2, k_total, stride)[:k]


@torch.no_grad()
def error_table(denoiser, x: Tensor, classes, ts: Tensor, *, seed: int = 0, paired: bool = True,
                loss: str = "l2", batch: int | None = None, progress=None) -> Tensor:
    """The denoising error of every image under every candidate class at every draw: (N, C, K), float32.

    x: (N, ...) clean images in the denoiser's scaling; classes: C condition ids (the null id is allowed, e.g.
    for a control); ts: K integer timesteps of the denoiser's training schedule (`denoiser.sigmas[t]` is the VE
    noise level). Draw k of image i uses the noise eps[i, k] for every class when `paired` (Li et al.), and a
    fresh noise per class otherwise; the noise comes from `seed` alone, so a table does not depend on `batch` (rows
    per forward pass; None: the device's feature batch). loss: 'l2' or 'l1', the pixel mean of the eps error.
    progress: a callable given the number of rows done after each pass (a progress bar's update)."""
    if loss not in LOSSES:
        raise bad(InputError, "loss", loss, f"choose one of {LOSSES}")
    classes = torch.as_tensor(classes, dtype=torch.long)
    if classes.dim() != 1 or len(classes) == 0:
        raise bad(InputError, "classes", classes, "pass a 1-D list of candidate condition ids")
    ts = torch.as_tensor(ts, dtype=torch.long)
    sigmas = getattr(denoiser, "sigmas", None)
    if sigmas is None:
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser that carries its training noise levels "
                  "(`sigmas`), such as dr.zoo.denoiser('unet_fmnist')")
    if ts.dim() != 1 or len(ts) == 0 or (ts < 0).any() or (ts >= len(sigmas)).any():
        raise bad(InputError, "ts", ts, f"pass integer timesteps from 0 to {len(sigmas) - 1}")
    n, c, k = len(x), len(classes), len(ts)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, 1 if paired else c, k, *x.shape[1:]), generator=g).to(x.device)
    sig = sigmas[ts].to(x.device, torch.float32)
    # one row per (image, class, draw), in that order; a forward pass reads `batch` rows
    rows = torch.arange(n * c * k, device=x.device)
    img, cls, draw = rows // (c * k), (rows // k) % c, rows % k
    out = torch.empty(n * c * k, device=x.device)
    step = batch or feature_batch(x.device)
    for a in range(0, len(rows), step):
        i, j, d = img[a:a + step], cls[a:a + step], draw[a:a + step]
        s = sig[d].view(-1, *[1] * (x.dim() - 1))
        eps = noise[i, 0 if paired else j, d]
        x0_hat = denoiser(x[i] + s * eps, sig[d], classes.to(x.device)[j]).float()
        err = (x0_hat - x[i]) / s
        out[a:a + step] = (err.square() if loss == "l2" else err.abs()).flatten(1).mean(1)
        if progress is not None:
            progress(len(i))
    return out.view(n, c, k)


def scores(table: Tensor, draws: Tensor | None = None) -> Tensor:
    """The mean error of each (image, class) over the given draws (positions of the table's last axis; default
    all): (N, C). Lower is more likely: -scores is the log-posterior up to a constant, as Li et al. take it."""
    return (table if draws is None else table[..., torch.as_tensor(draws)]).mean(-1)


def classify(table: Tensor, draws: Tensor | None = None) -> Tensor:
    """The position (in `classes`) of the lowest mean error per image over the given draws: (N,)."""
    return scores(table, draws).argmin(1)


def adaptive(table: Tensor, stages) -> tuple[Tensor, Tensor]:
    """Li et al.'s elimination over a table: stages ((k_1, keep_1), ..., (k_n, 1)) with k increasing; stage j
    scores the surviving classes on the subgrid of k_j draws (`subgrid`) and keeps the keep_j lowest. A draw once
    read is never read again: a class's score is the mean over all draws of the stages it took part in.
    Returns (positions of the chosen classes (N,), network evaluations per image (N,)): the evaluations of the
    cells an actual run reads, sum over stages of new draws x surviving classes."""
    n, c, k_total = table.shape
    stages = [(int(k), int(keep)) for k, keep in stages]
    if not stages or stages[-1][1] != 1 or any(b[0] <= a[0] for a, b in zip(stages, stages[1:])) \
            or any(keep < 1 or keep > c for _, keep in stages):
        raise bad(InputError, "stages", stages, f"pass (draws, keep) pairs with draws increasing, 1 <= keep <= {c} "
                  "and keep = 1 at the last stage, e.g. ((5, 3), (25, 1))")
    alive = torch.ones(n, c, dtype=torch.bool)
    seen = torch.zeros(k_total, dtype=torch.bool)
    evaluations = 0
    for k, keep in stages:
        grid = torch.zeros(k_total, dtype=torch.bool)
        grid[subgrid(k_total, k)] = True
        evaluations += int((grid & ~seen).sum()) * int(alive[0].sum())     # new draws x classes still alive
        seen |= grid                            # the draws read so far: a survivor has been read at all of them
        mean = table[..., seen].mean(-1).masked_fill(~alive, float("inf"))
        best = mean.topk(keep, dim=1, largest=False).indices
        alive = torch.zeros_like(alive).scatter_(1, best, True)
    return best[:, 0], torch.full((n,), evaluations)
