"""Small-scale sample metrics (ch. 1).

FID-FM is the Fréchet distance (Heusel et al. 2017) between Gaussians fitted to features of the zoo's
Fashion-MNIST classifier (its 128-d penultimate layer), not Inception features: the numbers are only
comparable with each other, never with published FIDs. Sample accuracy is that classifier's accuracy on
class-conditional samples, measured against the requested class.

Each metric checks its inputs once and raises `errors.InputError` naming the argument, the value received and what
to do: images that are not (N, C, 28, 28) floats in [-1, 1] (uint8 or [0, 255] pixels, a missing channel axis),
NaN or inf, too few samples for a covariance, statistics of mismatched dimensions, labels of the wrong length.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping

import torch

from ..errors import InputError, bad, check_int, finite

Tensor = torch.Tensor

SIDE = 28            # the evaluation classifier's input side (Fashion-MNIST)






def _images(classifier, x, name: str = "x") -> Tensor:
    """Images for the evaluation classifier: a float tensor (N, C, 28, 28), N >= 1, finite, in [-1, 1] (not
    [0, 255] pixels); C is the classifier's input channels when it says (cfg.in_channels)."""
    channels = getattr(getattr(classifier, "cfg", None), "in_channels", None)
    want = f"(N, {channels if channels is not None else 'C'}, {SIDE}, {SIDE})"
    if not isinstance(x, Tensor):
        raise bad(InputError, name, x, f"pass images as a float tensor {want} in [-1, 1] (torch.as_tensor(x))")
    if x.dim() != 4:
        fix = {3: "add the channel axis: x[:, None]", 2: f"reshape the rows to images: x.view(-1, 1, {SIDE}, {SIDE})"}
        raise bad(InputError, name, x, fix.get(x.dim(), f"pass images {want}"), f"images must be 4-D {want}")
    if not len(x):
        raise bad(InputError, name, x, "pass at least one image", "empty")
    if (channels is not None and x.shape[1] != channels) or tuple(x.shape[2:]) != (SIDE, SIDE):
        raise bad(InputError, name, x, f"pass images {want}, the evaluation classifier's input (resize or "
                  "crop other sizes first)")
    if not x.is_floating_point():
        raise bad(InputError, name, x, "scale pixels to [-1, 1] floats first: x.float() / 127.5 - 1",
                  "integer pixels would be read as values up to 255")
    finite(x, name, "drop or repair the images with NaN or inf values (a diverged sampler?)")
    lo, hi = float(x.min()), float(x.max())
    if hi > 10 or lo < -10:
        raise bad(InputError, name, x, "scale pixels to [-1, 1] first: x / 127.5 - 1 for [0, 255] pixels",
                  f"values from {lo:g} to {hi:g}: the classifier expects [-1, 1]")
    return x


def _labels(y, name: str, n: int) -> Tensor:
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex() \
            or y.dtype == torch.bool:
        raise bad(InputError, name, y, f"pass integer class ids as a 1-D tensor of length {n} (y.flatten().long())")
    if len(y) != n:
        raise bad(InputError, name, y, f"pass one label per image ({n})", f"{len(y)} labels for {n} images")
    return y


def _one_class(y) -> bool:
    if isinstance(y, Tensor):
        return y.dim() == 0 and not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
    if isinstance(y, bool):
        return False
    try:
        operator.index(y)
    except TypeError:
        return False
    return True


def _points(x, name: str, rows: int = 1, what: str = "points (N, d)") -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise bad(InputError, name, x, f"pass {what} as a 2-D tensor; flatten other axes first: x.flatten(1)")
    if len(x) < rows or x.shape[1] < 1:
        raise bad(InputError, name, x, f"pass at least {rows} row(s) of at least one value", "too few rows")
    finite(x, name, "drop or repair the rows with NaN or inf values")
    return x


@torch.no_grad()
def features(classifier, x: Tensor, batch: int = 256) -> Tensor:
    """Penultimate-layer features (N, 128) of the evaluation classifier, in float64; x (N, 1, 28, 28) in [-1, 1].
    batch: images per forward pass (on two CPU cores 256 ran at twice the images per second of 1,000)."""
    x = _images(classifier, x)
    batch = check_int(batch, "batch", "pass a positive number of images per forward pass")
    return torch.cat([classifier.features(x[i:i + batch].float()) for i in range(0, len(x), batch)]).double()


def gaussian_stats(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2."""
    feats = _points(feats, "feats", rows=2, what="features (N, D), N >= 2 for a covariance,")
    return feats.mean(0), torch.cov(feats.T)


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2}) between two Gaussians.

    tr (C1 C2)^{1/2} is computed as the sum of square roots of the eigenvalues of the symmetric matrix
    C1^{1/2} C2 C1^{1/2}, which has the same spectrum and needs no non-symmetric matrix square root."""
    _check_stats(mu1, cov1, "mu1", "cov1")
    _check_stats(mu2, cov2, "mu2", "cov2", len(mu1))
    lam, vec = torch.linalg.eigh(cov1.double())
    root1 = (vec * lam.clamp(min=0).sqrt()) @ vec.T
    tr_covmean = torch.linalg.eigvalsh(root1 @ cov2.double() @ root1).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(cov1 + cov2) - 2 * tr_covmean)


def _check_stats(mu, cov, mu_name: str, cov_name: str, dim: int | None = None) -> None:
    """A Gaussian's statistics: mean (D,) and a symmetric covariance (D, D), finite; D = dim when given."""
    fix = "pass the mean (D,) and covariance (D, D) that gaussian_stats(features) returns"
    if not isinstance(mu, Tensor) or mu.dim() != 1 or not len(mu) or (dim is not None and len(mu) != dim):
        raise bad(InputError, mu_name, mu, fix + (f", with D = {dim} as for the other Gaussian" if dim else ""))
    if not isinstance(cov, Tensor) or tuple(cov.shape) != (len(mu), len(mu)):
        raise bad(InputError, cov_name, cov, fix + f": here ({len(mu)}, {len(mu)})")
    finite(mu, mu_name, "compute the statistics from finite features (at least 2 samples)")
    finite(cov, cov_name, "compute the statistics from finite features (at least 2 samples)")
    scale = float(cov.abs().max())
    if float((cov - cov.T).abs().max()) > 1e-4 * scale + 1e-12:
        raise bad(InputError, cov_name, cov, fix, "not symmetric: not a covariance matrix")


def fid_fm(classifier, x: Tensor, ref_stats: tuple[Tensor, Tensor]) -> float:
    """FID-FM of images x (N, 1, 28, 28) in [-1, 1] against reference statistics (mean, covariance). N must
    exceed the feature dimension (128): fewer images give a singular covariance and a meaningless distance."""
    if not isinstance(ref_stats, (tuple, list)) or len(ref_stats) != 2:
        raise bad(InputError, "ref_stats", ref_stats, "pass (mean, covariance) of the reference features: "
                  "gaussian_stats(features(classifier, x_ref))")
    _check_stats(*ref_stats, "ref_stats[0]", "ref_stats[1]")
    dim = len(ref_stats[0])
    x = _images(classifier, x)
    if len(x) <= dim:
        raise bad(InputError, "x", x, f"pass more than {dim} images (the book uses at least 300)",
                  f"{len(x)} images for {dim}-d features: their covariance is singular")
    return frechet_distance(*gaussian_stats(features(classifier, x)), *ref_stats)


@torch.no_grad()
def sample_accuracy(classifier, x: Tensor, y: Tensor, batch: int = 256) -> float:
    """Fraction of samples that the evaluation classifier assigns to their requested class: y (N,) class ids, or
    one int for every sample."""
    x = _images(classifier, x)
    if not _one_class(y):                            # one int (or 0-d tensor): that class for every sample
        y = _labels(y, "y", len(x))
    batch = check_int(batch, "batch", "pass a positive number of images per forward pass")
    pred = torch.cat([classifier(x[i:i + batch].float()).argmax(1) for i in range(0, len(x), batch)])
    return (pred == y).float().mean().item()


def calibration(probs: Tensor, y: Tensor, bins: int = 15) -> dict:
    """Expected calibration error (Guo et al. 2017) of predicted class probabilities (N, C) against labels (N,):
    the predictions binned by their confidence (the largest probability) into `bins` equal-width bins, and::

        ECE = sum over bins b of  n_b / N * abs(accuracy_b - confidence_b)     (n_b predictions in bin b)

    Returns {'ece', 'confidence', 'accuracy', 'count'}: the ECE and per bin the mean confidence, the accuracy and
    the number of predictions (empty bins: NaN), the data of a reliability diagram."""
    if not isinstance(probs, Tensor) or probs.dim() != 2 or not torch.isfinite(probs).all():
        raise bad(InputError, "probs", probs, "pass class probabilities (N, C), e.g. logits.softmax(1)")
    y = _labels(y, "y", len(probs))
    bins = check_int(bins, "bins", "pass a positive number of confidence bins (15 is usual)")
    conf, pred = probs.float().max(1)
    hit = (pred == y.to(pred.device)).float()
    which = (conf * bins).long().clamp(max=bins - 1)            # bin b holds confidences in [b / bins, (b + 1) / bins)
    count = torch.bincount(which, minlength=bins).float()
    mean = lambda v: torch.bincount(which, weights=v, minlength=bins) / count
    conf_b, acc_b = mean(conf), mean(hit)
    gap = torch.nan_to_num((acc_b - conf_b).abs()) * count / len(probs)
    return {"ece": gap.sum().item(), "confidence": conf_b, "accuracy": acc_b, "count": count}


def energy_distance(a: Tensor, b: Tensor) -> float:
    """Energy distance 2E|A-B| - E|A-A'| - E|B-B'| (Székely & Rizzo 2013) between point clouds (N, d);
    zero if and only if the distributions are equal. Used on the 2-D toys."""
    a, b = _points(a, "a"), _points(b, "b")
    if b.shape[1] != a.shape[1]:
        raise bad(InputError, "b", b, f"pass points of a's dimension, {a.shape[1]}")
    a, b = a.double(), b.double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


@torch.no_grad()
def denoising_errors(denoiser, x0: Tensor, sigmas: Tensor, *, generator=None) -> Tensor:
    """Mean squared error of a denoiser's x0_hat per noise level, (S,) float64.

    x = x0 + sigma eps, x0_hat = D(x, sigma). The implied eps_hat = (x - x0_hat) / sigma has error
    MSE_x0 / sigma^2, and a v-prediction's error is MSE_x0 (1 + sigma^2) / sigma^2: the spaces differ by a
    factor per level, so comparing two denoisers at one level gives the same verdict in every space.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.dim() < 1 or not len(x0):
        raise bad(InputError, "x0", x0, "pass clean data as a non-empty float tensor (N, ...)")
    finite(x0, "x0", "drop or repair the rows with NaN or inf values")
    try:
        levels = torch.as_tensor(sigmas, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        levels = None
    if levels is None or levels.dim() != 1 or not len(levels) or not torch.isfinite(levels).all() \
            or (levels < 0).any():
        raise bad(InputError, "sigmas", sigmas, "pass a non-empty 1-D tensor (or list) of finite noise levels "
                  ">= 0, e.g. torch.tensor([0.1, 1.0]); one level still goes in a list")
    errs = []
    for sigma in sigmas:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        s = torch.full((len(x0),), float(sigma), dtype=x0.dtype)
        errs.append((denoiser(x0 + sigma * eps, s) - x0).double().pow(2).mean())
    return torch.stack(errs)


def diversity(x: Tensor, y: Tensor) -> float:
    """Mean pairwise L2 distance between samples of the same class, averaged over classes (ch. 3); the classes
    with a single sample are skipped, and at least one class needs two."""
    if not isinstance(x, Tensor) or x.dim() < 2 or x.is_complex() or x.dtype == torch.bool:
        raise bad(InputError, "x", x, "pass samples as a tensor (N, ...), one row per sample")
    finite(x, "x", "drop or repair the samples with NaN or inf values")
    y = _labels(y, "y", len(x))
    if not len(x) or int(y.unique(return_counts=True)[1].max()) < 2:
        raise bad(InputError, "y", y, "pass at least two samples of one class", "no class has two samples: "
                  "diversity is undefined")
    per_class = [torch.pdist(x[y == c].flatten(1).double()).mean() for c in y.unique() if (y == c).sum() > 1]
    return float(torch.stack(per_class).mean())


def sample_metrics(classifier, samples: dict, ref_stats) -> dict:
    """FID-FM, sample accuracy and diversity of a class-conditional sample set {'x', 'y'}."""
    if not isinstance(samples, Mapping) or "x" not in samples or "y" not in samples:
        raise bad(InputError, "samples", samples if not isinstance(samples, Mapping) else sorted(samples, key=str),
                  "pass a sample set {'x': images (N, 1, 28, 28), 'y': class ids (N,)}, as generation.sample_set "
                  "returns")
    x, y = samples["x"], samples["y"]
    _images(classifier, x, "samples['x']")
    _labels(y, "samples['y']", len(x))
    return {"fid": fid_fm(classifier, x, ref_stats), "acc": sample_accuracy(classifier, x, y), "div": diversity(x, y)}
