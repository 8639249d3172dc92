"""Representations from a diffusion network's intermediate activations (survey §3.1.1-§3.1.2, Fig. 4, Eq. 16).

    feats = extract(net, x, t=25, layers=["up.1", "mid.2"])         # {path: activations}, hooks removed after
    vec = pool(as_map(feats["blocks.3"], extras=0), size=2)          # tokens -> map -> 2x2-pooled vector

Clean images x are noised to timestep t of the model's schedule, x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps
(a flow-matching network: along its straight path, at the same signal-to-noise ratio; `PATHS`), one forward pass
is run, and forward hooks that are always removed record the outputs of the requested
modules (by module path, as `named_modules` spells it). No model changes its `forward`. It works on the book's
networks net(x_t, t, y), on a VPDenoiser (its network and schedule), and on `diffusers` models such as
`UNet2DModel` and `UNet2DConditionModel` (a Stable Diffusion U-Net in Colab), to which extra arguments such as
`encoder_hidden_states` are passed through `forward_kwargs`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import flow_matching, forward_process, schedules
from ..core.denoisers import VPDenoiser, check_input
from ..errors import InputError, bad, check_int
from ..support.hooks import first, forward_until, recording


def _vp_input(x: Tensor, t: Tensor, abar: Tensor, eps: Tensor):
    """The VP path: x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps, the network told the integer timestep t."""
    return forward_process.q_sample(x, t, abar, eps), t


def _straight_input(x: Tensor, t: Tensor, abar: Tensor, eps: Tensor):
    """The straight path of flow matching, x_s = (1 - s) x + s eps, at the time s whose signal-to-noise ratio is
    that of step t of the VP schedule abar (so that a (t, block) grid means the same noise levels for both paths);
    the network told 1000 s, as it was trained."""
    s = flow_matching.time_of_abar(abar[t])
    return flow_matching.interpolate(x, eps, s), flow_matching.TIME_SCALE * s


# How a network is noised for reading, by the path it was trained on (`zoo.registry.Method.path`): (x, t, abar,
# eps) -> (the network's input, its time argument).
PATHS = {"vp": _vp_input, "straight": _straight_input}


def carry_schedule(net, abar, path: str = "vp"):
    """Attach to `net` the noise schedule (abar_t, t = 0..T-1) it was trained with and its noising path (a key of
    PATHS), so that `extract` and the framework read it without an `abar=` argument; returns net. The zoo does
    this for its networks. A flow-matching network ('straight') carries the VP schedule that names its timesteps:
    step t is read at that step's signal-to-noise ratio. Plain attributes, not buffers: the network's state dict
    (and so its stored weights) is unchanged."""
    if path not in PATHS:
        raise bad(InputError, "path", path, f"choose one of {sorted(PATHS)}")
    net.schedule_abar, net.schedule_path = _check_abar(abar), path
    return net


def _network_and_schedule(model, abar):
    """(network, abar, path) of what `extract` reads."""
    if isinstance(model, VPDenoiser):
        return model.net, schedules.abar_from_sigma(model.sigmas).float() if abar is None else _check_abar(abar), "vp"
    if isinstance(model, flow_matching.FlowDenoiser):
        if abar is None:
            raise bad(InputError, "abar", None, "a FlowDenoiser has no timesteps of its own: pass abar= (the VP "
                      "schedule whose steps name the noise levels, e.g. dr.recipes.abar(recipe)), or read the "
                      "network from dr.zoo, which carries its recipe's")
        return model.net, _check_abar(abar), "straight"
    path = getattr(model, "schedule_path", "vp")
    if abar is None:
        abar = getattr(model, "schedule_abar", None)          # the zoo's networks carry their recipe's schedule
    if abar is None:
        raise bad(InputError, "abar", None, f"a bare {type(model).__name__} does not say which noise schedule it "
                  "was trained with: pass abar= (dr.recipes.abar(recipe) for a book network, "
                  "scheduler.alphas_cumprod for a diffusers model), or a VPDenoiser, or a network from dr.zoo")
    return model, _check_abar(abar), path


def _check_abar(abar) -> Tensor:
    abar = torch.as_tensor(abar)
    if abar.dim() != 1 or len(abar) < 1 or not abar.is_floating_point() or not torch.isfinite(abar).all() \
            or (abar <= 0).any() or (abar > 1).any():
        raise bad(InputError, "abar", abar, "pass the schedule's alphas_cumprod: a 1-D float tensor in (0, 1]")
    return abar


def _check_t(t, T: int, n: int, device) -> Tensor:
    """t as (n,) long timesteps after checking it is integral and inside [0, T): no silent wrap or truncation."""
    fix = f"pass integer timesteps in [0, {T - 1}] (0 is the least noisy step), one int or one per image"
    if isinstance(t, bool):
        raise bad(InputError, "t", t, fix)
    try:
        tt = torch.as_tensor(t, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise bad(InputError, "t", t, fix) from None
    if tt.dim() > 1 or (tt.dim() == 1 and len(tt) not in (1, n)) or tt.dtype == torch.bool:
        raise bad(InputError, "t", t, fix)
    if tt.is_floating_point():
        if not torch.isfinite(tt).all() or (tt != tt.round()).any():
            raise bad(InputError, "t", t, fix, "not an integer: a fractional t would be truncated")
    elif tt.is_complex():
        raise bad(InputError, "t", t, fix)
    if (tt < 0).any() or (tt >= T).any():
        raise bad(InputError, "t", t, fix, f"outside the schedule's {T} steps")
    return tt.long().expand(n)


def _check_layers(layers) -> list[str]:
    if isinstance(layers, str) or not all(isinstance(p, str) for p in layers) or not len(layers):
        raise bad(InputError, "layers", layers, "pass a list of module paths, e.g. ['up.1'] "
                  "(a single path still goes in a list)")
    return list(dict.fromkeys(layers))                 # a path listed twice is hooked (and returned) once


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

    t: an int or (N,) tensor of integer timesteps in [0, T) (0 is the least noisy step of the schedule).
    layers: module paths; a path listed twice is recorded once.
    abar: the schedule the network was trained with; taken from a VPDenoiser, or from a zoo network (which carries
    its recipe's schedule), and required for any other network (a diffusers model: scheduler.alphas_cumprod).
    noise: the eps to use, shaped like x (or ``(ensemble, *x.shape)``); drawn from `generator` when None.
    ensemble: average the activations over this many noise draws (as DIFT and DDPM-Seg do).
    Returns {path: tensor}; a module that returns a tuple (diffusers blocks) contributes its first element.
    Each pass stops once the last of `layers` has run: reading an encoder never runs the decoder.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise bad(InputError, "x", x, "pass clean images as a float tensor (N, C, H, W) in the model's data range")
    ensemble = check_int(ensemble, "ensemble", "pass a positive number of noise draws (1 = one draw)")
    if y is not None and (not isinstance(y, Tensor) or y.dim() != 1 or len(y) != len(x) or y.is_floating_point()):
        raise bad(InputError, "y", y, f"pass one integer label per image: a long tensor of length {len(x)}")
    layers = _check_layers(layers)
    net, abar, path = _network_and_schedule(model, abar)
    check_input(net, x)
    null = getattr(net, "null_label", None)
    if y is not None and null is not None and y.device.type == "cpu" and ((y < 0).any() or (y > null).any()):
        raise bad(InputError, "y", y, f"labels run from 0 to {null - 1}, and {null} is the null label",
                  f"values from {int(y.min())} to {int(y.max())}")
    modules = dict(net.named_modules())
    missing = [p for p in layers if p not in modules]
    if missing:
        raise bad(InputError, "layers", missing, f"no such module in {type(net).__name__}; name modules as "
                  f"named_modules() spells them (its top-level ones: {[n for n in modules if n and '.' not in n]})")
    if noise is not None and not isinstance(noise, Tensor):
        raise bad(InputError, "noise", noise, f"pass a tensor shaped like x, {tuple(x.shape)}, or None")
    if noise is not None and noise.shape not in (x.shape, (ensemble, *x.shape)):
        raise bad(InputError, "noise", noise, f"pass noise of shape {tuple(x.shape)} or {(ensemble, *x.shape)}")
    t = _check_t(t, len(abar), len(x), x.device)
    abar = abar.to(x.device, x.dtype)
    sums: dict[str, Tensor] = {}
    with recording({p: modules[p] for p in layers}, lambda out: first(out).detach().float()) as current, \
            forward_until(modules[p] for p in layers) as run:        # layers after the last one read never run
        for k in range(ensemble):
            if noise is None:
                eps = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            else:
                eps = noise if noise.shape == x.shape else noise[k]
            current.clear()
            run(_call, net, *PATHS[path](x, t, abar, eps), y, forward_kwargs or {})
            silent = [p for p in layers if p not in current]
            if silent:
                raise bad(InputError, "layers", silent, "hook one of its children: a container such as a ModuleList "
                          "has no forward of its own", "not called in the forward pass")
            for p in layers:
                sums[p] = current[p] if p not in sums else sums[p] + current[p]
    return {p: s / ensemble for p, s in sums.items()}


def as_map(feat: Tensor, extras: int = 0) -> Tensor:
    """Feature maps (N, C, H, W) unchanged; transformer tokens (N, T, D) -> (N, D, g, g) after dropping the first
    `extras` tokens (U-ViT's time and label tokens: `extras=net.extras`)."""
    if feat.dim() == 4:
        return feat
    if feat.dim() != 3:
        raise bad(InputError, "feat", feat, "pass (N, C, H, W) feature maps or (N, T, D) tokens")
    tokens = feat[:, extras:]
    g = round(tokens.shape[1] ** 0.5)
    if g * g != tokens.shape[1]:
        raise bad(InputError, "extras", extras, f"{tokens.shape[1]} tokens remain, not a square grid: pass the "
                  "number of non-patch tokens (U-ViT: net.extras)")
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
