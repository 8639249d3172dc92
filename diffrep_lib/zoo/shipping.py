"""Shipping the `quick` zoo: `make zoo` trains a recipe on the CPU and writes its weights and manifest entry;
`verify` checks every shipped entry against today's recipes and code; `stale` lists what needs retraining.

Shipped weight files are float16: half the bytes of float32, so the book can ship more models (but for
`recipes.FULL_PRECISION`, teachers whose clustered features define other models' training ids). The golden
output stored with it is the stored weights' (computed in float32, as they are used); the record's metrics are
the float32 model's, measured right after training.
"""
from __future__ import annotations

import torch

from . import api, build, recipes
from .golden import golden_output
from .recipes import Recipe, get as recipe, recipe_hash
from .store import ZooError, atomic_save, checkpoint_path, file_lock, read_manifest, retrain_command, sha256, \
    shipped_path, write_entry


def store_weights(r: Recipe, model, rec: dict) -> dict:
    """Write the float16 weights (float32 for recipes.FULL_PRECISION) of recipe r's model to the package and complete
    its record (golden output of the stored weights, sha256, bytes); returns the record."""
    path = shipped_path(r.name)
    half = r.name not in recipes.FULL_PRECISION
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
    atomic_save(state, path)
    rec = {**rec, "golden": golden_output(build.load_into(r, path), r),
           "weights_dtype": "float16" if half else "float32"}
    rec["sha256"], rec["bytes"] = sha256(path), path.stat().st_size
    return rec


def ship(name: str, *, retrain: bool = False) -> dict:
    """Train the quick recipe `name` on the CPU and write its weights (unless RECORD_ONLY) and manifest entry.
    The weights of an earlier finished run of the same recipe (its training checkpoint) are reused unless
    `retrain` (`make zoo`'s --force: the code that trains it changed, not the recipe)."""
    r = recipe(name, "quick", 0)
    ckpt = checkpoint_path(r)
    with file_lock(ckpt.with_name(f".{ckpt.stem}.lock")):        # two make zoo runs train a recipe once
        if retrain:
            ckpt.unlink(missing_ok=True)
        model, rec = build.fit(r, device="cpu")
        if name not in recipes.RECORD_ONLY:
            rec = store_weights(r, model, rec)
        write_entry(name, rec)
    return rec


def verify(names=None) -> list[str]:
    """Check every shipped entry: recipe hash, sha256 and golden output. Returns the problems found."""
    problems = []
    entries = read_manifest()["entries"]
    for name in names or recipes.SHIPPED:
        r = recipe(name, "quick", 0)
        entry = entries.get(name)
        if entry is None:
            problems.append(f"{name}: no manifest entry: run `{retrain_command(name)}`")
            continue
        if name in recipes.RECORD_ONLY:
            if entry["recipe_hash"] != recipe_hash(r):
                problems.append(f"recipe {name} changed since it was trained: run `{retrain_command(name)}`")
            continue
        try:
            model = api.shipped(r)
        except ZooError as err:
            problems.append(str(err))
            continue
        got, want = torch.tensor(golden_output(model, r)), torch.tensor(entry["golden"])
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            problems.append(f"{name}: today's model code does not reproduce the golden output "
                            f"(max difference {(got - want).abs().max():.2e}): a refactor changed behaviour; "
                            f"fix the code, or run `{retrain_command(name)}` if the change is intended")
    return problems


def stale(names=None) -> list[str]:
    """Recipes whose shipped weights are missing or were trained from another recipe."""
    entries = read_manifest()["entries"]
    out = []
    for name in names or recipes.SHIPPED:
        e = entries.get(name)
        if e is None or e["recipe_hash"] != recipe_hash(recipe(name, "quick", 0)) \
                or (name not in recipes.RECORD_ONLY and not shipped_path(name).exists()):
            out.append(name)
    return out
