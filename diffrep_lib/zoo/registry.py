"""The registry: how a method plugs into the zoo without the zoo knowing its name (STYLE: plain-dict registries).

A recipe names a task (`Recipe.task`) and a condition (`Recipe.condition`); the zoo and its training loop look
both up here and never branch on a method. A method module (in `diffrep_lib.methods`) registers:

- a `Method` under each task it trains: its per-sample loss terms, the weights of those terms (one visible
  line), how it wraps the bare network for storage and for training, how the trained model is evaluated,
  how the network is called, and (optionally) what is measured along the training curve;
- a `Condition` under each condition source it provides: where the ids that condition a denoiser come from
  (human labels, k-means ids of an encoder, online assignments drawn in every step, ...).

`diffrep_lib/methods/__init__.py` is the one place that imports (and so registers) the method modules.
docs/ARCHITECTURE.md walks through adding one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def _unwrapped(recipe, net, *, for_training: bool):
    return net


def _no_weights(recipe) -> dict:
    return {}


def _denoiser_call(model, x, t, y):
    return model(x, t, y) if y is not None else model(x, t)


@dataclass(frozen=True)
class Method:
    """How the zoo trains, stores and evaluates the recipes of one task.

    - ``terms(net, x, y, *, recipe, abar, null, generator)`` -> {term: per-sample loss (N,)}
    - ``weights(recipe)`` -> {term: weight}; a term not named weighs 1
    - ``wrap(recipe, net, *, for_training)`` -> the module the zoo stores (for_training=False) or trains (True;
      it may hold a frozen teacher and training-only heads, and is then exported with `.export()` if it has one)
    - ``evaluate(model, recipe)`` -> {metric: value} on held-out data, stored in the manifest with the weights
    - ``call(model, x, t, y)`` -> the network's output on a batch (the golden output of `zoo.golden` uses it)
    - ``curve(recipe)`` -> point(step, model) -> {metric: value}, evaluated every recipe.curve_every steps (or None)
    - ``denoiser(net, recipe)`` -> the trained network behind the denoiser contract D(x, sigma, cond) -> x0_hat, for
      methods that are not read on a VP schedule (flow matching); None: `VPDenoiser` on the recipe's schedule and
      prediction, and the network carries that schedule for `readout.features`
    - ``path``: the noising path `readout.features` reads the network on, a key of `readout.features.PATHS`:
      'vp' (x_t = sqrt(abar) x + sqrt(1 - abar) eps) or 'straight' (flow matching's (1 - s) x + s eps)
    - ``data(recipe)`` -> (x, y), a training set the method makes itself (reflow's noise-sample pairs); None: the
      recipe's data set, with the ids of its condition source
    """
    terms: Callable
    evaluate: Callable
    weights: Callable = _no_weights
    wrap: Callable = _unwrapped
    call: Callable = _denoiser_call
    curve: Callable | None = None
    denoiser: Callable | None = None
    path: str = "vp"
    data: Callable | None = None


@dataclass(frozen=True)
class Condition:
    """Where the condition ids of a conditional denoiser come from.

    - ``ids(recipe, x, y)`` -> the training ids aligned with x (N,), or None when the method draws them in every
      step
    - ``human``: True when the ids are the data set's labels (held-out scoring conditions on them; self-made ids
      are scored unconditionally, with the null id)
    """
    ids: Callable
    human: bool = False


METHODS: dict[str, Method] = {}
CONDITIONS: dict[str, Condition] = {}


def register(table: dict, name: str, entry, *, replace: bool = False) -> None:
    """Add `entry` under `name`. Another entry under a taken name is an error (a typo or a clash) unless
    replace=True (a notebook cell that defines and registers a method, run again)."""
    if name in table and table[name] is not entry and not replace:
        raise KeyError(f"{name!r} is registered already ({table[name]!r}); choose another name")
    table[name] = entry


def method(task: str) -> Method:
    """The method registered for `task`, with the registered names in the error when there is none."""
    if task not in METHODS:
        raise KeyError(f"no method registered for task {task!r}; registered: {sorted(METHODS)} "
                       "(methods register in diffrep_lib/methods/__init__.py)")
    return METHODS[task]


def condition(name: str) -> Condition:
    """The condition source registered as `name`."""
    if name not in CONDITIONS:
        raise KeyError(f"no condition registered as {name!r}; registered: {sorted(CONDITIONS)}")
    return CONDITIONS[name]
