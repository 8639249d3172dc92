"""The zoo's loading API: train once, share everywhere.

    dr.zoo.get("unet_fmnist", profile)                 -> the trained network (EMA weights, eval mode, CPU)
    dr.zoo.load("unet_fmnist", profile, init="random") -> the same architecture with random weights (the control)
    dr.zoo.denoiser("unet_fmnist", profile)            -> the trained network behind the denoiser contract

`quick`, seed 0 comes from the shipped weights; anything else is trained on first use into the cache (a corrupt
cached file is reported and retrained).
"""
from __future__ import annotations

import json
import os
import sys
import warnings

import torch

from ..core import denoisers
from ..core.precision import bf16_native
from ..readout.features import carry_schedule
from ..support.runtime import for_inference, progress_enabled
from ..support.profile import resolve
from . import build, recipes, registry
from .build import build_model, load_into
from .recipes import Recipe, abar, get as recipe, recipe_hash
from .store import ZooError, atomic_save, atomic_write_text, cached_path, file_lock, read_manifest, retrain_command, \
    sha256, shipped_path

INITS = ("trained", "random")      # the one spelling of the random-weight control: init="random"


def _use_shipped(name: str, profile: str, seed: int) -> bool:
    return profile == "quick" and seed == 0 and os.environ.get("DIFFREP_RETRAIN") != "1"


def shipped_entry(r: Recipe) -> dict:
    """The manifest entry of a shipped recipe, checked against today's recipe."""
    entry = read_manifest()["entries"].get(r.name)
    if entry is None:
        raise ZooError(f"no shipped record for {r.name!r}: run `{retrain_command(r.name)}`")
    if entry["recipe_hash"] != recipe_hash(r):
        raise ZooError(f"recipe {r.name} changed since it was trained: run `{retrain_command(r.name)}`")
    return entry


def shipped(r: Recipe):
    """The shipped model of recipe r, after checking its recipe hash and its file's sha256."""
    entry = shipped_entry(r)
    path = shipped_path(r.name)
    if not path.exists():
        raise ZooError(f"no shipped weights for {r.name!r}: run `{retrain_command(r.name)}`")
    if sha256(path) != entry["sha256"]:
        raise ZooError(f"{path.name} does not match its manifest sha256 (altered or corrupt): "
                       f"run `{retrain_command(r.name)}`")
    return load_into(r, path)


def _cached_model(r: Recipe, path):
    """The cached model at `path`, or None (with a warning naming the file) when it is missing, unreadable or does
    not match the sha256 its record stores: such a model is trained again, never returned."""
    rec_path = path.with_suffix(".json")
    if not path.exists():
        return None
    try:
        rec = json.loads(rec_path.read_text())
        want = rec.get("sha256") or _adopt(r, path, rec)
    except FileNotFoundError:
        problem = f"its record {rec_path.name} is missing"
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        problem = f"its record {rec_path} or the file is unreadable ({type(err).__name__}: {err})"
    else:
        if sha256(path) != want:
            problem = "the file does not match the sha256 of its record (altered or corrupt)"
        else:
            try:
                return load_into(r, path)
            except Exception as err:        # a foreign file with the right hash cannot happen; say what did
                problem = f"it is unreadable ({type(err).__name__}: {err})"
    warnings.warn(f"cached model {path}: {problem}; training it again", stacklevel=3)
    return None


def _adopt(r: Recipe, path, rec: dict) -> str:
    """A record written before records carried their file's sha256: if the file loads, record its hash now."""
    load_into(r, path)
    rec["sha256"] = sha256(path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(rec, indent=1))
    return rec["sha256"]


def _from_cache(r: Recipe, profile: str, device: str | None):
    path = cached_path(r, profile)
    with file_lock(path.with_name(f".{path.stem}.lock")):   # one process trains a model; the others wait, then load it
        model = _cached_model(r, path)
        if model is not None:
            return model
        if r.name in recipes.RECORD_ONLY and _use_shipped(r.name, profile, r.seed):
            warnings.warn(f"{r.name} ships only its training record, not its weights: training it now "
                          f"({r.steps} steps) into {path}", stacklevel=3)
        elif progress_enabled():
            print(f"zoo: training {r.name} ({profile}, seed {r.seed}, {r.steps} steps) into {path.parent}",
                  file=sys.stderr)
        model, rec = build.fit(r, device=device)
        atomic_save(model.state_dict(), path)
        atomic_write_text(path.with_suffix(".json"), json.dumps({**rec, "sha256": sha256(path)}, indent=1))
        return load_into(r, path)      # as every later call gets it (fit's EMA copy has requires_grad off)


def get(name: str, profile: str = "auto", seed: int = 0, device: str | None = None):
    """The trained model `name` for a profile and training seed (eval mode, on the CPU, weights in the layout the
    CPU reads fastest: `_for_reading`), carrying its recipe's noise schedule and noising path for
    `features.extract`."""
    profile = resolve(profile)
    r = recipe(name, profile, seed)
    if _use_shipped(name, profile, seed) and name not in recipes.RECORD_ONLY:
        return _with_schedule(_for_reading(shipped(r)), r)
    return _with_schedule(_for_reading(_from_cache(r, profile, device)), r)


def _for_reading(model):
    """Weights in the layout this CPU reads them fastest in: the library reads zoo models in bfloat16 where the CPU
    computes it natively and in float32 elsewhere (`core.precision`), and each has its layout
    (`runtime.for_inference`)."""
    return for_inference(model, bf16=bf16_native("cpu"))


def _with_schedule(model, r: Recipe):
    """The model carrying its recipe's schedule and its method's noising path for `readout.features` (a
    flow-matching network is read on its straight path, at the noise levels of its recipe's VP steps)."""
    return carry_schedule(model, abar(r), registry.method(r.task).path)


def record(name: str, profile: str = "auto", seed: int = 0, device: str | None = None) -> dict:
    """The training record of `name`: steps, wall time, device, loss curve and held-out metrics.

    The shipped quick/seed-0 record comes from the manifest (also for RECORD_ONLY recipes, whose weights
    are not shipped); any other is read from the cache, training the model first if needed."""
    profile = resolve(profile)
    r = recipe(name, profile, seed)
    if _use_shipped(name, profile, seed):
        return shipped_entry(r)
    path = cached_path(r, profile)
    try:                                                # the record, when it belongs to the weights beside it
        rec = json.loads(path.with_suffix(".json").read_text())
        if rec.get("sha256") == sha256(path):
            return rec
    except (OSError, ValueError, AttributeError):
        pass
    _from_cache(r, profile, device)                     # trains, or retrains a corrupt model, when needed
    return json.loads(path.with_suffix(".json").read_text())


def untrained(name: str, profile: str = "auto", seed: int = 0, *, zero_layers: str = "random"):
    """The network of recipe `name` before any training step: the random-initialisation control of every
    representation claim.

    zero_layers="keep": exactly the weights that training with this seed starts from. Our backbones start some
    layers at zero (the U-Net's last conv of each residual block, the DiT's adaLN-Zero gates), which makes every
    block the identity, so such a network computes an affine function of its input. zero_layers="random" (the
    default) draws those layers with PyTorch's default initialisation instead, so that every block computes a
    random nonlinear function: the stronger control, "this architecture with random weights"."""
    if zero_layers not in ("random", "keep"):
        raise ValueError(f"zero_layers must be 'random' or 'keep', got {zero_layers!r}")
    r = recipe(name, resolve(profile), seed)
    torch.manual_seed(r.seed)
    net = build_model(r)
    if zero_layers == "random":
        for m in net.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() > 1 and not w.any() and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return _with_schedule(_for_reading(net.eval()), r)


def load(name: str, profile: str = "auto", seed: int = 0, *, init: str = "trained"):
    """The network `name` trained (init='trained', `get`) or with random weights (init='random', `untrained`):
    the one switch between a model and its random-weight control."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return get(name, profile, seed) if init == "trained" else untrained(name, profile, seed)


def denoiser(name: str, profile: str = "auto", seed: int = 0, device: str | None = None, *, init: str = "trained"):
    """The zoo network `name` behind the denoiser contract D(x, sigma, cond) -> x0_hat: its method's reading
    (`registry.Method.denoiser`), by default a VPDenoiser on the recipe's schedule and prediction. init='random'
    reads the same architecture with random weights (`load`'s control) the same way."""
    r = recipe(name, resolve(profile), seed)
    net = get(name, profile, seed, device) if init == "trained" else load(name, profile, seed, init=init)
    read = registry.method(r.task).denoiser
    return (read(net, r) if read is not None else denoisers.VPDenoiser(net, abar(r), r.prediction)).eval()


def condition_ids(name: str, profile: str = "auto", seed: int = 0):
    """The ids the recipe `name` was trained on, one per training image, from its condition source (e.g. the
    k-means ids of its teacher for a self-labelled model, whatever seed a notebook samples with); None for a
    recipe whose ids are drawn in every step (online clustering) or whose data are generated."""
    return build.training_data(recipe(name, resolve(profile), seed))[1]


def model_id(name: str, profile: str = "auto", seed: int = 0, *, init: str = "trained") -> str:
    """A short identity of the weights `load` returns, for memoisation keys: the recipe's hash, for shipped
    weights also their sha256 (weights re-shipped from the same recipe, e.g. on another machine, are new
    weights), and '-random' for the random-weight control."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    profile = resolve(profile)
    ident = f"{name}-{profile}-s{seed}-{recipe_hash(recipe(name, profile, seed))[:16]}"
    if init == "random":
        return ident + "-random"
    if _use_shipped(name, profile, seed) and name not in recipes.RECORD_ONLY:
        ident += "-" + read_manifest()["entries"].get(name, {}).get("sha256", "unshipped")[:8]
    return ident
