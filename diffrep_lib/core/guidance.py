"""Guidance as wrappers: each takes a denoiser and returns a denoiser (survey §2.3, Eqs. 11-13; ch. 3).

Because samplers only see D(x, sigma, cond), a guided denoiser works with every sampler and backbone.
Notation: the VE scaling x = x0 + sigma n; for a VP network x_t = alpha x with alpha = 1 / sqrt(1 + sigma^2).

Classifier-free guidance (Ho & Salimans 2022):  eps~ = eps_u + s (eps_c - eps_u). For a fixed x, eps is an
affine function of x0_hat, so the same combination applies to x0_hat: x0~ = x0_u + s (x0_c - x0_u).
Classifier guidance (Dhariwal & Nichol 2021), in its score form ('condition_score', used with DDIM)::

    grad log p(x | y) = grad log p(x) + s grad_x log p_phi(y | x)  =>  x0~ = x0_hat + s sigma^2 grad_x log p_phi(y | x),

which equals eps~ = eps_hat - sqrt(1 - abar) grad_{x_t} log p_phi(y | x_t) of the paper.
"""
from __future__ import annotations

import torch

from ..errors import InputError, bad, check_int, real
from . import schedules
from .forward_process import per_sample

Tensor = torch.Tensor


def _check_guidance(denoiser, scale, null, null_required: bool) -> None:
    """The arguments every guidance wrapper shares, checked once when it is built."""
    if not callable(denoiser):
        raise bad(InputError, "denoiser", denoiser, "pass a denoiser D(x, sigma, cond), e.g. dr.zoo.denoiser(name)")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite number (0 = unguided, 1 = conditional for CFG)")
    if null is None and not null_required:
        return
    check_int(null, "null", "pass the network's null label id, D.net.null_label", low=0)
    own = getattr(getattr(denoiser, "net", None), "null_label", None)
    if own is not None and null != own:
        raise bad(InputError, "null", null, f"pass the network's own null label, {own} (D.net.null_label)")


def _check_cfg(denoiser, scale, null, interval) -> None:
    _check_guidance(denoiser, scale, null, null_required=True)
    if interval is not None and (not isinstance(interval, (tuple, list)) or len(interval) != 2
                                 or not all(real(v) for v in interval) or not 0 <= interval[0] <= interval[1]):
        raise bad(InputError, "interval", interval, "pass (sigma_lo, sigma_hi) with 0 <= sigma_lo <= sigma_hi, "
                  "or None to guide at every level")


def _check_classifier_guidance(denoiser, classifier, scale, sigmas_table, null) -> None:
    _check_guidance(denoiser, scale, null, null_required=False)
    if not callable(classifier) or getattr(classifier, "output_kind", "logits") != "logits":
        raise bad(InputError, "classifier", classifier, "pass a noise-aware classifier classifier(x_t, t) -> logits, "
                  "e.g. dr.zoo.get('noisy_classifier_fmnist')")
    table = torch.as_tensor(sigmas_table)
    if table.dim() != 1 or len(table) < 2 or not torch.isfinite(table).all() or (table <= 0).any() \
            or (table[1:] <= table[:-1]).any():
        raise bad(InputError, "sigmas_table", sigmas_table, "pass the classifier's training noise levels, increasing "
                  "with t: dr.schedules.sigma_from_abar(abar) (a VPDenoiser's .sigmas)")


def _no_cond(what: str) -> InputError:
    return bad(InputError, "cond", None, f"{what} needs the requested classes: pass cond")


def cfg(denoiser, scale: float, null: int, interval: tuple[float, float] | None = None):
    """Classifier-free guidance with guidance scale `scale` (1 = conditional, 0 = unconditional).

    The conditional and unconditional predictions come from one network call on a doubled batch.
    `interval = (sigma_lo, sigma_hi)` guides only while sigma lies inside it (Kynkäänniemi et al. 2024;
    REPA's guidance interval) and uses the conditional prediction elsewhere.
    """
    _check_cfg(denoiser, scale, null, interval)

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise _no_cond("classifier-free guidance")
        sigma = torch.as_tensor(sigma, device=x.device).expand(x.shape[0])
        if scale == 1.0:
            return denoiser(x, sigma, cond)
        x0_c, x0_u = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]),
                              torch.cat([cond, torch.full_like(cond, null)])).chunk(2)
        s = torch.full_like(sigma, float(scale), dtype=x.dtype)
        out = x0_u + per_sample(s, x) * (x0_c - x0_u)
        if interval is None:
            return out
        inside = (sigma >= interval[0]) & (sigma <= interval[1])
        return torch.where(inside.reshape(-1, *([1] * (x.ndim - 1))), out, x0_c)   # outside: the conditional itself

    return guided


def classifier_guidance(denoiser, classifier, scale: float, sigmas_table: Tensor, null: int | None = None):
    """Classifier guidance with a noise-aware classifier p_phi(y | x_t, t) that takes VP inputs.

    `sigmas_table` maps the classifier's integer timesteps to VE noise levels (its training schedule);
    `null` is the label the wrapped denoiser receives (an unconditional model: its null class), the
    requested class goes to the classifier only.
    """
    _check_classifier_guidance(denoiser, classifier, scale, sigmas_table, null)

    def log_p_grad(x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        with torch.enable_grad():
            x = x.detach().float().requires_grad_(True)
            alpha = per_sample((1 + sigma.double() ** 2).rsqrt(), x)
            t = schedules.sigma_to_t(sigma.double(), sigmas_table).float()
            logits = classifier(alpha * x, t)
            log_p = torch.log_softmax(logits.float(), dim=1).gather(1, y[:, None]).sum()
            return torch.autograd.grad(log_p, x)[0]

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise _no_cond("classifier guidance")
        sigma = torch.as_tensor(sigma, device=x.device).expand(x.shape[0])
        inner = torch.full_like(cond, null) if null is not None else cond
        x0 = denoiser(x, sigma, inner)
        if scale == 0:
            return x0
        return x0 + float(scale) * per_sample(sigma, x) ** 2 * log_p_grad(x, sigma, cond).to(x0.dtype)

    return guided


GUIDANCE = {"cfg": cfg, "classifier": classifier_guidance}
