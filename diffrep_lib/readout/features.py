"""Representations from a diffusion network's intermediate activations (survey §3.1.1-§3.1.2, Fig. 4, Eq. 16).

    feats = extract(net, x, t=25, layers=["up.1", "mid.2"])         # {path: activations}, hooks removed after
    vec = pool(as_map(feats["blocks.3"], extras=0), size=2)          # tokens -> map -> 2x2-pooled vector

Clean images x are noised to timestep t of the model's schedule, x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps,
one forward pass is run, and forward hooks that are always removed record the outputs of the requested
modules (by module path, as `named_modules` spells it). No model changes its `forward`. It works on the book's
networks net(x_t, t, y), on a VPDenoiser (its network and schedule), and on `diffusers` models such as
`UNet2DModel` and `UNet2DConditionModel` (a Stable Diffusion U-Net in Colab), to which extra arguments such as
`encoder_hidden_states` are passed through `forward_kwargs`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import forward_process, schedules
from ..core.denoisers import VPDenoiser
from ..support.hooks import first, recording


def _network_and_schedule(model, abar):
    if isinstance(model, VPDenoiser):
        return model.net, schedules.abar_from_sigma(model.sigmas).float() if abar is None else abar
    if abar is None:
        config = getattr(model, "config", None)
        T = getattr(config, "num_train_timesteps", None) or 1000
        abar = schedules.alphas_cumprod(schedules.betas_linear(T))
    return model, abar


def _call(net, x_t: Tensor, t: Tensor, y, forward_kwargs: dict):
    if hasattr(net, "config") and hasattr(net, "dtype"):                  # a diffusers ModelMixin
        kwargs = dict(forward_kwargs)
        if y is not None:
            kwargs["class_labels"] = y
        return net(x_t, t, **kwargs)
    return net(x_t, t, y, **forward_kwargs) if y is not None else net(x_t, t, **forward_kwargs)


@torch.no_grad()
def extract(model, x: Tensor, t, layers, *, y: Tensor | None = None, abar: Tensor | None = None,
            noise: Tensor | None = None, ensemble: int = 1, generator: torch.Generator | None = None,
            forward_kwargs: dict | None = None) -> dict[str, Tensor]:
    """Activations of the modules `layers` for clean images x (N, C, H, W) noised to timestep t.

    t: an int or (N,) tensor of timesteps (0 is the least noisy step of the schedule).
    noise: the eps to use, shaped like x (or ``(ensemble, *x.shape)``); drawn from `generator` when None.
    ensemble: average the activations over this many noise draws (as DIFT and DDPM-Seg do).
    Returns {path: tensor}; a module that returns a tuple (diffusers blocks) contributes its first element.
    """
    net, abar = _network_and_schedule(model, abar)
    modules = dict(net.named_modules())
    missing = [p for p in layers if p not in modules]
    if missing:
        raise KeyError(f"no module named {missing} in {type(net).__name__}; "
                       f"its top-level modules are {[n for n in modules if n and '.' not in n]}")
    if noise is not None and noise.shape not in (x.shape, (ensemble, *x.shape)):
        raise ValueError(f"noise must have shape {tuple(x.shape)} or {(ensemble, *x.shape)}, got {tuple(noise.shape)}")
    t = torch.as_tensor(t, device=x.device).long().expand(x.shape[0])
    abar = abar.to(x.device, x.dtype)
    sums: dict[str, Tensor] = {}
    with recording({p: modules[p] for p in layers}, lambda out: first(out).detach().float()) as current:
        for k in range(ensemble):
            if noise is None:
                eps = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            else:
                eps = noise if noise.shape == x.shape else noise[k]
            current.clear()
            _call(net, forward_process.q_sample(x, t, abar, eps), t, y, forward_kwargs or {})
            silent = [p for p in layers if p not in current]
            if silent:
                raise RuntimeError(f"modules {silent} were not called in the forward pass (a container such as "
                                   "a ModuleList has no forward of its own: hook one of its children)")
            for p in layers:
                sums[p] = current[p] if p not in sums else sums[p] + current[p]
    return {p: s / ensemble for p, s in sums.items()}


def as_map(feat: Tensor, extras: int = 0) -> Tensor:
    """Feature maps (N, C, H, W) unchanged; transformer tokens (N, T, D) -> (N, D, g, g) after dropping the first
    `extras` tokens (U-ViT's time and label tokens: `extras=net.extras`)."""
    if feat.dim() == 4:
        return feat
    if feat.dim() != 3:
        raise ValueError(f"expected (N, C, H, W) maps or (N, T, D) tokens, got shape {tuple(feat.shape)}")
    tokens = feat[:, extras:]
    g = round(tokens.shape[1] ** 0.5)
    if g * g != tokens.shape[1]:
        raise ValueError(f"{tokens.shape[1]} tokens after dropping {extras} extras do not form a square grid")
    return tokens.transpose(1, 2).reshape(feat.shape[0], feat.shape[2], g, g)


def pool(feat: Tensor, size: int | None = None) -> Tensor:
    """A feature map (N, C, H, W) as one vector per image: global average pooling (size None) or average
    pooling to size x size, flattened (DDAE's pooled probes)."""
    if size is None:
        return feat.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(feat, size).flatten(1)


def upsample(feat: Tensor, size) -> Tensor:
    """Bilinear resize of feature maps to `size` (H, W), as DDPM-Seg does before its per-pixel heads."""
    return F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
