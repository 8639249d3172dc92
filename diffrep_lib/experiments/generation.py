"""Sample sets of zoo models, memoised (ch. 1 and later): plain, classifier-free guided, classifier guided, guided by
the model's own classifier head (a joint model, ch. 7), or by its own self-attention (SAG and its controls, ch. 10).

`sample_set` is the entry point used by chapters: the result depends only on its arguments and the model's
identity, so nbval's second execution reads it from disk. The sampling itself is `core.sampling`.
"""
from __future__ import annotations

import functools

import torch

from .. import zoo
from ..core import attention_guidance, denoisers, diffusers_bridge, guidance, samplers, schedules
from ..errors import GridError, InputError, bad, check_int, real
from ..core.sampling import GRIDS, balanced_labels, condition_ids, generate, sigma_grid
from ..support import memo
from ..support.profile import device_for, resolve
from ..zoo import recipes
from ..support.runtime import inference_batch
from ..core.precision import bf16_autocast, bf16_native

Tensor = torch.Tensor
# self-attention guidance (ch. 10): the mask of each guide, the layer whose attention is read (the U-Net's middle
# block, as diffusers' SAG pipeline reads its U-Net's), and the blur: SAG's sigma of 9 pixels at 256 x 256 (the
# official unconditional ImageNet setting) is 1 pixel at 28 x 28
SAG_GUIDES = {"sag": "attention", "sag_everywhere": "everywhere", "sag_random": "random"}
SAG_LAYER, SAG_BLUR = "mid.1", 1.0
# perturbed-attention guidance (ch. 11): 'pag' alone (unconditional), 'pag_cfg' on top of classifier-free guidance;
# the perturbed self-attention layers are named by module path (`layers`)
GUIDES = (None, "cfg", "classifier", "self", *SAG_GUIDES, "pag", "pag_cfg")


@functools.lru_cache(maxsize=8)
def zoo_denoiser(name: str, profile: str, seed: int = 0):
    """The zoo denoiser, loaded once per process."""
    return zoo.denoiser(name, profile, seed)


def _attention_layers(D, model: str, layers: tuple) -> list:
    modules = dict(D.net.named_modules())
    found = [modules.get(path) for path in layers]
    if not layers or not all(hasattr(m, "identity") for m in found):
        options = [p for p, m in modules.items() if hasattr(m, "identity")]
        raise bad(InputError, "layers", layers, f"name self-attention layers of {model!r} by module path: {options}")
    return found


def guided_denoiser(model: str, profile: str, model_seed: int = 0, guide: str | None = None, scale: float = 1.0,
                    seed: int = 0, layers: tuple = (), cfg_scale: float = 1.0):
    """The zoo model as a clipped denoiser, optionally wrapped by guidance ('cfg', 'classifier', 'self' or a SAG
    guide); classifier guidance uses the zoo's noise-aware classifier, on the timesteps of its own training schedule,
    and the model's null label (unconditional); 'self' uses a joint model's own head, classify(x_t, t), on the
    model's schedule; 'sag' reads the U-Net's middle self-attention (SAG_LAYER), 'sag_everywhere' and 'sag_random'
    are its controls (the whole prediction blurred; a random region of the salient one's size, drawn from `seed`);
    'pag' perturbs the self-attention `layers` (module paths) at PAG scale `scale`, 'pag_cfg' adds it to
    classifier-free guidance at `cfg_scale`."""
    device = device_for(profile)
    D = zoo_denoiser(model, profile, model_seed).to(device)
    null = D.net.null_label
    if guide is None:
        G = D
    elif guide == "cfg":
        G = guidance.cfg(D, scale, null)
    elif guide == "classifier":
        clf = zoo_classifier("noisy_classifier_fmnist", profile).to(device)
        table = schedules.sigma_from_abar(recipes.abar(recipes.get("noisy_classifier_fmnist", resolve(profile))))
        G = guidance.classifier_guidance(D, clf, scale, table.to(device), null=null)
    elif guide == "self":
        if not hasattr(D.net, "classify"):
            raise bad(InputError, "guide", guide, f"{model!r} has no classifier head; guide='self' needs a joint "
                      "model (ch. 7), e.g. 'joint_unet_a1e-2'")
        table = schedules.sigma_from_abar(recipes.abar(recipes.get(model, resolve(profile))))
        G = guidance.classifier_guidance(D, D.net.classify, scale, table.to(device), null=null)
    elif guide in SAG_GUIDES:
        layer = dict(D.net.named_modules()).get(SAG_LAYER)
        if not hasattr(layer, "probs"):
            raise bad(InputError, "guide", guide, f"{model!r} has no self-attention layer {SAG_LAYER!r} to read; SAG "
                      "takes the book's U-Nets, e.g. 'unet_fmnist_uncond'")
        G = attention_guidance.self_attention_guidance(D, layer, scale, blur_sigma=SAG_BLUR, mask=SAG_GUIDES[guide],
                                                       seed=seed)
    elif guide == "pag":
        G = attention_guidance.perturbed_attention_guidance(D, _attention_layers(D, model, layers), scale)
    elif guide == "pag_cfg":
        G = attention_guidance.perturbed_attention_cfg(D, _attention_layers(D, model, layers), scale, cfg_scale, null)
    else:
        raise bad(InputError, "guide", guide, f"choose one of {GUIDES}")
    return denoisers.clip_x0(G), D


@functools.lru_cache(maxsize=4)
def zoo_classifier(name: str, profile: str):
    return zoo.get(name, profile).eval().requires_grad_(False)


def _sample_set(model: str, profile: str, model_seed: int, sampler: str, nfe: int, n: int, seed: int,
                grid: str, bf16: bool, guide: str | None = None, scale: float = 1.0, labels="balanced",
                layers: tuple = (), cfg_scale: float = 1.0) -> dict:
    device = device_for(profile)
    G, D = guided_denoiser(model, profile, model_seed, guide, scale, seed=seed, layers=layers, cfg_scale=cfg_scale)
    y = condition_ids(labels, n, D.net.null_label)
    sigmas = sigma_grid(D, samplers.steps_for_nfe(sampler, nfe), grid)
    x = generate(G, n, sampler=sampler, sigmas=sigmas, cond=y, seed=seed, bf16=bf16,
                 batch=inference_batch(device), device=device)
    return {"x": x, "y": y}


def _check_sample_set(sampler, nfe, n, seed, grid, guide, scale) -> None:
    """sample_set's arguments, checked before anything is computed or memoised."""
    if sampler not in samplers.SAMPLERS:
        raise bad(GridError, "sampler", sampler, f"choose one of {sorted(samplers.SAMPLERS)}")
    for name, value in (("nfe", nfe), ("n", n)):
        check_int(value, name, "pass a positive integer", kind=InputError if name == "n" else GridError)
    check_int(seed, "seed", "pass a non-negative integer seed", low=0)
    if grid not in GRIDS:
        raise bad(GridError, "grid", grid, f"choose one of {GRIDS}")
    if guide not in GUIDES:
        raise bad(InputError, "guide", guide, f"choose one of {GUIDES}")
    if not real(scale):
        raise bad(InputError, "scale", scale, "pass a finite guidance scale")



def sample_set(model: str, profile: str, *, sampler: str, nfe: int, n: int, seed: int = 0,
               model_seed: int = 0, grid: str = "karras", bf16: bool = True, guide: str | None = None,
               scale: float = 1.0, labels="balanced", layers: tuple = (), cfg_scale: float = 1.0) -> dict:
    """Conditional samples {'x': (n, 1, 28, 28), 'y': (n,)} from a zoo model, x0 clipped to [-1, 1], optionally
    guided (`guide` at `scale`, see guided_denoiser); memoised on disk. `labels`: 'balanced' classes, 'null' (the
    unconditional model) or a tuple of counts per id (cluster sizes, for self-labelled models). PAG: `layers`, the
    module paths of the perturbed self-attention layers; 'pag_cfg': `cfg_scale`."""
    _check_sample_set(sampler, nfe, n, seed, grid, guide, scale)
    if guide == "pag" and scale == 0:           # PAG at scale 0 is the unguided sampler: one memo entry for both
        guide, scale = None, 1.0
    if guide in ("pag", "pag_cfg"):
        layers = tuple(layers)
    else:
        layers, cfg_scale = (), 1.0           # unused: one memo entry
    if guide == "cfg" and scale == 1.0:      # CFG at scale 1 is the conditional model: one memo entry for both
        guide = None
    if guide is None:                         # the scale of no guidance does not matter: one memo entry
        scale = 1.0
    bf16 = bf16 and bf16_native(device_for(profile))    # the precision actually used enters the memo key
    deps = (zoo.model_id(model, profile, model_seed),)
    if guide == "classifier":
        deps += (zoo.model_id("noisy_classifier_fmnist", profile),)
    extra = {"layers": layers, "cfg_scale": float(cfg_scale)} if guide in ("pag", "pag_cfg") else {}
    return memo.cached(_sample_set, model, profile, model_seed, sampler, nfe, n, seed, grid, bf16, guide,
                       float(scale), labels=labels, deps=deps, **extra)


def _ddim_clipping(model: str, profile: str, scale: float, n: int, seed: int, steps: int) -> dict:
    from diffusers import DDIMScheduler

    D = zoo_denoiser(model, profile).cpu()
    guided = guidance.cfg(D, scale, D.net.null_label)
    amp = bf16_autocast("cpu")                                   # the network in bf16, the samplers in fp32
    y = balanced_labels(n)
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    out = {"y": y}
    bf16 = lambda f: (lambda x, sigma, cond=None: f(x, sigma, cond).float())
    with amp:
        for name, kwargs in [("eps kept", {}), ("eps recomputed", {"use_clipped_model_output": True})]:
            sch = DDIMScheduler(num_train_timesteps=len(D.sigmas), clip_sample=True, timestep_spacing="trailing")
            out[f"diffusers, {name}"] = diffusers_bridge.sample(bf16(guided), sch, x_T, steps, cond=y,
                                                                step_kwargs=kwargs).clamp(-1, 1)
        sig = sigma_grid(D, steps, "trailing")
        x_ve = x_T * (1 + sig[0] ** 2).sqrt().float()           # the same VP noise, in the VE scaling
        out["library"] = samplers.sample_ddim(denoisers.clip_x0(bf16(guided)), x_ve, sig, cond=y).clamp(-1, 1)
    return out


def ddim_clipping_comparison(model: str, profile: str, *, scale: float, n: int, seed: int = 0, steps: int = 20) -> dict:
    """CFG-guided DDIM with clipped x0_hat, three ways (ch. 3): diffusers keeping the unclipped eps_hat
    (its default), diffusers recomputing eps_hat from the clipped x0_hat, and the library's sample_ddim.
    Same initial noise for all; memoised."""
    return memo.cached(_ddim_clipping, model, profile, float(scale), n, seed, steps,
                       deps=(zoo.model_id(model, profile),))
