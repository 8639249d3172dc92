"""The errors the library raises when it is used wrongly: one type per family, one message shape.

Every message names the argument, the value received and what to do::

    GridError: sigmas: got [0.0, 1.0, 2.0] (increasing); a sampler needs a decreasing grid of noise levels ending
    at 0; build one with dr.sampling.sigma_grid(denoiser, steps) or dr.schedules.sigmas_karras(n, lo, hi)

Families (all subclasses of `DiffrepError`; the input families are also `ValueError`, so code that catches
ValueError keeps working):

    GridError    noise-level grids, timestep tables, sampler names, step and NFE budgets
    InputError   tensors and arguments handed to denoisers, guidance, feature extraction, probes and metrics
    DataError    data files and folders (missing, truncated, inconsistent)
    ZooError     recipes, seeds, shipped and cached models
    CacheError   a cached file that is corrupt or foreign (reported, then rebuilt: never returned)

The module sits below every layer and imports nothing of the library.
"""
from __future__ import annotations

import math
import numbers
import operator


class DiffrepError(Exception):
    """Base class of every error the library raises on misuse."""


class GridError(DiffrepError, ValueError):
    """A noise-level grid, timestep table, sampler name or step budget that no sampler can use."""


class InputError(DiffrepError, ValueError):
    """A tensor or argument of the wrong shape, dtype, range or kind."""


class DataError(DiffrepError, RuntimeError):
    """A data file or folder that is missing, truncated or inconsistent."""


class ZooError(DiffrepError, RuntimeError):
    """A recipe, seed, shipped weight or cached model that cannot be used as asked."""


class CacheError(DiffrepError, RuntimeError):
    """A cached file that is unreadable, corrupt or written for another key."""


def integer(value) -> bool:
    """An integer (Python's, numpy's or a 0-d integer tensor), not a bool: what a count, seed or step must be."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def real(value) -> bool:
    """A finite real number (numpy's included), not a bool: what a scale or level must be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value, argument: str, fix: str = "", *, low: int | None = 1, high: int | None = None,
              kind: type | None = None) -> int:
    """`value` as an int in [low, high] (see `integer`), or the error of family `kind` (InputError by default)
    naming `argument`."""
    v = operator.index(value) if integer(value) else None
    if v is None or (low is not None and v < low) or (high is not None and v > high):
        span = ("an integer" if low is None and high is None else f"an integer >= {low}" if high is None
                else f"an integer in {low}..{high}")
        raise bad(kind or InputError, argument, value, fix or f"pass {span}", f"need {span}")
    return v


def finite(x, argument: str, fix: str, kind: type | None = None) -> None:
    """Raise the error of family `kind` (InputError by default) if the float tensor x holds NaN or inf."""
    if (x.is_floating_point() or x.is_complex()) and not bool(x.isfinite().all()):
        raise bad(kind or InputError, argument, x, fix, f"{int((~x.isfinite()).sum())} NaN or inf values")


def show(value, limit: int = 80) -> str:
    """A short description of a received value: tensors and arrays by shape and dtype, the rest by repr."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        kind = type(value).__name__
        return f"a {kind} of shape {tuple(shape)} and dtype {value.dtype}"
    if hasattr(value, "named_modules"):                    # an nn.Module: its repr is the whole architecture
        return f"a {type(value).__name__} module"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def bad(kind: type, argument: str, value, fix: str, why: str = "") -> DiffrepError:
    """The error of family `kind` for `argument` set to `value`: '<argument>: got <value>[ (<why>)]; <fix>'."""
    return kind(f"{argument}: got {show(value)}{f' ({why})' if why else ''}; {fix}")
