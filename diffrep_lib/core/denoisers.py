"""The one denoiser contract of the library, and adapters to it (ch. 1).

A denoiser is any callable  D(x, sigma, cond) -> x0_hat  where x = x0 + sigma * n is in the
variance-exploding (VE) scaling of Karras et al. 2022 and sigma has shape (N,). Samplers only ever see
this contract; how a network is parameterised (eps, x0, v) or scaled (VP) is the adapter's business.
The score follows from it: grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2 (survey §2.1).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import InputError, bad
from . import parameterisation, schedules
from .forward_process import per_sample

Tensor = torch.Tensor
Denoiser = Callable[..., Tensor]


class NoiseRange:
    """The noise range of a denoiser module that keeps its training levels, increasing, in `self.sigmas`: what
    `sampling.sigma_grid` reads."""

    @property
    def sigma_min(self) -> float:
        return self.sigmas[0].item()

    @property
    def sigma_max(self) -> float:
        return self.sigmas[-1].item()


class VPDenoiser(NoiseRange, nn.Module):
    """Wraps a discrete-time VP network net(x_t, t, cond) that predicts eps, x0 or v.

    x_VE is rescaled to x_t = alpha x_VE, and sigma is turned into a fractional timestep by
    interpolating the training schedule, so on the schedule's own grid the network sees integer t.
    """

    def __init__(self, net: nn.Module, abar: Tensor, prediction: str = "eps"):
        super().__init__()
        if prediction not in parameterisation.KINDS:
            raise bad(InputError, "prediction", prediction, f"choose one of {parameterisation.KINDS}")
        if not isinstance(net, nn.Module):
            raise bad(InputError, "net", net, "pass a network net(x_t, t[, y]) (an nn.Module) that predicts "
                      f"{prediction}")
        output = getattr(net, "output_kind", "image")
        if output != "image":
            raise bad(InputError, "net", f"{type(net).__name__} (it outputs {output})", "a denoiser wraps a network "
                      "that predicts an image (eps, x0 or v), such as dr.zoo.get('unet_fmnist'); a classifier guides "
                      "a denoiser instead: dr.guidance.classifier_guidance(denoiser, classifier, scale, sigmas)")
        abar = torch.as_tensor(abar)
        if abar.dim() != 1 or not abar.is_floating_point() or not torch.isfinite(abar).all() \
                or (abar <= 0).any() or (abar > 1).any():
            raise bad(InputError, "abar", abar, "pass the training schedule's alphas_cumprod: a 1-D float tensor "
                      "in (0, 1], e.g. dr.recipes.abar(recipe)")
        self.net, self.prediction = net, prediction
        self.register_buffer("sigmas", schedules.sigma_from_abar(abar.double()), persistent=False)

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        self._check(x, sigma, cond)
        sigma = torch.as_tensor(sigma, device=x.device).expand(x.shape[0])
        alpha, s = (per_sample(c, x) for c in schedules.vp_coefficients(sigma.double()))
        x_t = alpha * x
        t = schedules.sigma_to_t(sigma.double(), self.sigmas).to(x.dtype)
        out = self.net(x_t, t, cond) if cond is not None else self.net(x_t, t)
        if out.shape != x.shape:
            raise bad(InputError, "net", f"an output of shape {tuple(out.shape)} for x of shape {tuple(x.shape)}",
                      "a denoiser's network predicts a tensor shaped like its input (eps, x0 or v): is it a "
                      "classifier or an encoder?")
        return parameterisation.to_x0(out, self.prediction, x_t, alpha, s)

    def _check(self, x, sigma, cond) -> None:
        """The contract's inputs, checked at every call: shapes and dtypes always; values (sigma >= 0, labels up to
        the null id) only where they cost no device synchronisation, on the CPU. Samplers check their grid once."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise bad(InputError, "x", x, "pass images as a float tensor (N, C, H, W) in the VE scaling x0 + sigma n "
                      "(convert uint8 images to [-1, 1] first)")
        check_input(self.net, x)
        sigma = torch.as_tensor(sigma)
        if sigma.dim() > 1 or (sigma.dim() == 1 and len(sigma) not in (1, len(x))):
            raise bad(InputError, "sigma", sigma, f"pass one noise level, or one per sample (shape ({len(x)},))")
        if sigma.device.type == "cpu" and (not torch.isfinite(sigma).all() or (sigma < 0).any()):
            raise bad(InputError, "sigma", sigma.tolist() if sigma.numel() < 8 else sigma,
                      "noise levels are finite and >= 0 (the VE sigma, not a timestep: "
                      "dr.schedules.sigma_from_abar(abar)[t])")
        null = getattr(self.net, "null_label", None)
        if cond is None or null is None:              # an unconditional network ignores labels, as it always did
            return
        dim = getattr(self.net, "condition_dim", None)
        if dim is not None:                           # a network conditioned on vectors (RCG's representations)
            if not isinstance(cond, Tensor) or not cond.is_floating_point() or tuple(cond.shape) != (len(x), dim):
                raise bad(InputError, "cond", cond, f"pass one condition vector per sample: a float tensor "
                          f"({len(x)}, {dim}); a zero row asks for no condition")
            return
        if not isinstance(cond, Tensor) or cond.dim() != 1 or len(cond) != len(x) or cond.is_floating_point():
            raise bad(InputError, "cond", cond, f"pass one integer label per sample: a long tensor of length {len(x)}")
        if cond.device.type == "cpu" and ((cond < 0).any() or (cond > null).any()):
            raise bad(InputError, "cond", cond, f"labels run from 0 to {null - 1}, and {null} is the null label "
                      "(unconditional)", f"values from {int(cond.min())} to {int(cond.max())}")


def check_input(net, x: Tensor, argument: str = "x") -> None:
    """x against the shape a network declares (`net.input_shape`: (C, H, W) or (D,), None where any size works),
    so that a wrong channel count or image size is named here rather than deep inside a convolution."""
    want = getattr(net, "input_shape", None)
    if want is None:
        return
    got = tuple(x.shape[1:])
    if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
        shape = ", ".join("any" if w is None else str(w) for w in want)
        raise bad(InputError, argument, x, f"{type(net).__name__} takes (N, {shape}): resize or convert the "
                  "images (channels first) or use a network trained on such data")


def clip_x0(denoiser: Denoiser, lo: float = -1.0, hi: float = 1.0) -> Denoiser:
    """x0_hat clipped to the data range. Samplers derive eps_hat from the clipped x0_hat, so the two stay
    consistent (diffusers' `use_clipped_model_output=True`); see ch. 3 for what goes wrong otherwise."""

    def clipped(x, sigma, cond=None):
        return denoiser(x, sigma, cond).clamp(lo, hi)

    return clipped


def score(denoiser: Denoiser, x: Tensor, sigma: Tensor, cond=None) -> Tensor:
    """grad_x log p_sigma(x) = (D(x, sigma) - x) / sigma^2 (Tweedie; survey §2.1)."""
    return (denoiser(x, sigma, cond) - x) / per_sample(torch.as_tensor(sigma, device=x.device).expand(x.shape[0]), x) ** 2


def gaussian_mixture_denoiser(means: Tensor, covs: Tensor, weights: Tensor) -> Denoiser:
    """The exact (Bayes-optimal) denoiser E[x0 | x] for x0 ~ sum_k w_k N(mu_k, Sigma_k), x = x0 + sigma n.

    Each component is a Gaussian for which E[x0 | x, k] = mu_k + Sigma_k (Sigma_k + sigma^2 I)^{-1} (x - mu_k);
    the components are weighted by their posterior responsibility p(k | x) under N(mu_k, Sigma_k + sigma^2 I).
    With Sigma_k = U_k diag(lam_k) U_k^T, (Sigma_k + sigma^2 I)^{-1} = U_k diag(1 / (lam_k + sigma^2)) U_k^T,
    so no linear system is solved per point. Shapes: means (K, d), covs (K, d, d), weights (K,); x (N, d).
    """
    means, logw = means.double(), weights.double().log()
    lam, U = torch.linalg.eigh(covs.double())                                  # (K, d), (K, d, d)

    def denoise(x: Tensor, sigma: Tensor, cond=None) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        z = torch.einsum("kdj,nkd->nkj", U, x.double()[:, None, :] - means[None])   # (N, K, d) in eigenbasis
        var = lam[None] + sigma[:, None, None] ** 2                                 # (N, K, d)
        logp = -0.5 * ((z**2 / var).sum(-1) + var.log().sum(-1)) + logw            # (N, K)
        resp = torch.softmax(logp, dim=1)
        shrunk = torch.einsum("kdj,nkj->nkd", U, lam[None] * z / var)               # Sigma (Sigma + s^2)^-1 (x - mu)
        return (resp[..., None] * (means[None] + shrunk)).sum(1).to(x.dtype)

    return denoise
