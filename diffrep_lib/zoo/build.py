"""From a recipe to a trained, evaluated model and its record: the zoo's training path, for every method alike.

The recipe's task and condition are looked up in the registry: the method wraps the network, gives the loss terms
and evaluates the result; the condition source gives the ids a conditional denoiser is told.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import time
import warnings

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .. import data, models
from . import registry, training
from .golden import golden_output
from .recipes import Recipe, recipe_hash
from .store import atomic_save, checkpoint_path


def build_model(r: Recipe, *, for_training: bool = False):
    """The module of recipe r as the zoo stores it (for_training=False), or as it trains (True: the method's
    wrapper may add a frozen teacher and training-only heads, dropped again by `.export()`)."""
    return registry.method(r.task).wrap(r, models.build(r.model), for_training=for_training)


def training_data(r: Recipe):
    """(x, y, draw) for the training loop: y are the ids of the recipe's condition source (None for unlabelled
    data, or when the method draws its ids in every step); the method decides whether its network is told them.
    A method that makes its own training set (reflow's pairs) gives (x, y) itself."""
    made = registry.method(r.task).data
    if made is not None:
        return (*made(r), None)
    x, y, draw = data.training_set(r.data)
    if draw is not None:
        return None, None, draw
    return x, registry.condition(r.condition).ids(r, x, y), None


def load_into(r: Recipe, path) -> torch.nn.Module:
    """Recipe r's module with the weights of a safetensors file (float16 files are loaded into float32)."""
    model = build_model(r)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.no_grad()
def evaluate(model, r: Recipe) -> dict:
    """The held-out numbers stored with the weights, by the recipe's method."""
    return registry.method(r.task).evaluate(model, r)


def _checkpoint(r: Recipe, ckpt):
    """(model, history) from a finished training run's checkpoint, or None; an unreadable one is reported by path,
    removed and trained again."""
    if not ckpt.exists():
        return None
    try:
        model = load_into(r, ckpt)
        with safe_open(str(ckpt), "pt") as f:
            return model, json.loads(f.metadata()["history"])
    except Exception as err:            # truncated, foreign or from an older format: its work cannot be used
        warnings.warn(f"training checkpoint {ckpt} is unreadable ({type(err).__name__}: {str(err)[:120]}); "
                      "training again", stacklevel=3)
        ckpt.unlink(missing_ok=True)
        return None


def fit(r: Recipe, device: str | None = None):
    """Train recipe r from scratch: returns (model, record) with the record that the manifest stores. The trained
    weights are saved (atomically) before they are evaluated, so a failure after training loses no work: the next
    call with the same recipe picks them up instead of training again."""
    ckpt = checkpoint_path(r)
    model = _checkpoint(r, ckpt)        # trained before, but evaluating or shipping failed: keep that work
    if model is not None:
        model, hist = model
    else:
        tic = time.time()
        x, y, draw = training_data(r)
        data_s = time.time() - tic          # what the method computes before its first step (reflow's pairs)
        method = registry.method(r.task)
        if r.curve_every and method.curve is None:
            raise ValueError(f"{r.name}: curve_every={r.curve_every}, but task {r.task!r} records no curve")
        torch.manual_seed(r.seed)
        net = build_model(r, for_training=True)
        model, hist = training.train(r, net, x, y, device=device, sample_batch=draw,
                                     checkpoint=method.curve(r) if r.curve_every else None)
        model = model.export() if hasattr(model, "export") else model
        hist["data_s"] = data_s
        atomic_save(model.state_dict(), ckpt, metadata={"history": json.dumps(hist)})
    rec = {
        "recipe_hash": recipe_hash(r),
        "config": json.loads(json.dumps(dataclasses.asdict(r), default=str)),
        "seed": r.seed, "steps": r.steps, "wall_s": round(hist["wall_s"], 1), "device": hist["device"],
        **({"data_s": round(hist["data_s"], 1)} if hist.get("data_s", 0) >= 1 else {}),   # beside wall_s
        **({"precision": hist["precision"]} if hist.get("precision", "fp32") != "fp32" else {}),
        "host": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "date": datetime.date.today().isoformat(),
        "metrics": {"final_train_loss": round(sum(hist["loss"][-2:]) / len(hist["loss"][-2:]), 5),
                    **evaluate(model, r)},
        "loss_curve": {"step": hist["step"], "loss": [round(v, 5) for v in hist["loss"]],
                       **({"terms": {k: [round(v, 5) for v in vs] for k, vs in hist["terms"].items()}}
                          if len(hist.get("terms", {})) > 1 else {})},
        "golden": golden_output(model, r),
    }
    if "curve" in hist:
        rec["curve"], rec["curve_s"] = hist["curve"], round(hist["curve_s"], 1)   # wall_s leaves the curve out
    return model, rec
