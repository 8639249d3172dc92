"""Small-scale sample metrics (ch. 1).

FID-FM is the Fréchet distance (Heusel et al. 2017) between Gaussians fitted to features of the zoo's
Fashion-MNIST classifier (its 128-d penultimate layer), not Inception features: the numbers are only
comparable with each other, never with published FIDs. Sample accuracy is that classifier's accuracy on
class-conditional samples, measured against the requested class.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


@torch.no_grad()
def features(classifier, x: Tensor, batch: int = 1000) -> Tensor:
    """Penultimate-layer features (N, 128) of the evaluation classifier, in float64."""
    return torch.cat([classifier.features(x[i:i + batch].float()) for i in range(0, len(x), batch)]).double()


def gaussian_stats(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D)."""
    return feats.mean(0), torch.cov(feats.T)


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2}) between two Gaussians.

    tr (C1 C2)^{1/2} is computed as the sum of square roots of the eigenvalues of the symmetric matrix
    C1^{1/2} C2 C1^{1/2}, which has the same spectrum and needs no non-symmetric matrix square root."""
    lam, vec = torch.linalg.eigh(cov1.double())
    root1 = (vec * lam.clamp(min=0).sqrt()) @ vec.T
    tr_covmean = torch.linalg.eigvalsh(root1 @ cov2.double() @ root1).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(cov1 + cov2) - 2 * tr_covmean)


def fid_fm(classifier, x: Tensor, ref_stats: tuple[Tensor, Tensor]) -> float:
    """FID-FM of images x (N, 1, 28, 28) in [-1, 1] against reference statistics."""
    return frechet_distance(*gaussian_stats(features(classifier, x)), *ref_stats)


@torch.no_grad()
def sample_accuracy(classifier, x: Tensor, y: Tensor, batch: int = 1000) -> float:
    """Fraction of samples that the evaluation classifier assigns to their requested class."""
    pred = torch.cat([classifier(x[i:i + batch].float()).argmax(1) for i in range(0, len(x), batch)])
    return (pred == y).float().mean().item()


def energy_distance(a: Tensor, b: Tensor) -> float:
    """Energy distance 2E|A-B| - E|A-A'| - E|B-B'| (Székely & Rizzo 2013) between point clouds (N, d);
    zero if and only if the distributions are equal. Used on the 2-D toys."""
    a, b = a.double(), b.double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


@torch.no_grad()
def denoising_errors(denoiser, x0: Tensor, sigmas: Tensor, *, generator=None) -> Tensor:
    """Mean squared error of a denoiser's x0_hat per noise level, (S,) float64.

    x = x0 + sigma eps, x0_hat = D(x, sigma). The implied eps_hat = (x - x0_hat) / sigma has error
    MSE_x0 / sigma^2, and a v-prediction's error is MSE_x0 (1 + sigma^2) / sigma^2: the spaces differ by a
    factor per level, so comparing two denoisers at one level gives the same verdict in every space.
    """
    errs = []
    for sigma in sigmas:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        s = torch.full((len(x0),), float(sigma), dtype=x0.dtype)
        errs.append((denoiser(x0 + sigma * eps, s) - x0).double().pow(2).mean())
    return torch.stack(errs)


def diversity(x: Tensor, y: Tensor) -> float:
    """Mean pairwise L2 distance between samples of the same class, averaged over classes (ch. 3)."""
    per_class = [torch.pdist(x[y == c].flatten(1).double()).mean() for c in y.unique() if (y == c).sum() > 1]
    return float(torch.stack(per_class).mean())


def sample_metrics(classifier, samples: dict, ref_stats) -> dict:
    """FID-FM, sample accuracy and diversity of a class-conditional sample set {'x', 'y'}."""
    x, y = samples["x"], samples["y"]
    return {"fid": fid_fm(classifier, x, ref_stats), "acc": sample_accuracy(classifier, x, y), "div": diversity(x, y)}
