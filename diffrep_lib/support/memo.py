"""Disk memoisation of expensive, deterministic evaluations (docs/ARCHITECTURE.md, "Memoisation").

nbval re-executes every notebook papermill has just executed; sample sets, features and sweeps are
therefore stored under DIFFREP_CACHE/memo, keyed by the function, its arguments (seed included) and the
identities of the models it uses, so the second execution costs seconds and a changed model recomputes.
Results are a tensor or a dict of tensors and JSON values; tensors go to safetensors, never pickle.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .runtime import cache_dir


def memo_dir() -> Path:
    return cache_dir() / "memo"


def key(fn, args: tuple, kwargs: dict, deps: tuple) -> str:
    """Hash of the function (its name and source, so editing it invalidates old results), arguments and deps."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # lambdas typed at a prompt, builtins
        source = ""
    payload = json.dumps([fn.__module__, fn.__qualname__, source, repr(args),
                          sorted((k, repr(v)) for k, v in kwargs.items()), list(deps)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def cached(fn, *args, deps: tuple = (), **kwargs):
    """``fn(*args, **kwargs)``, computed once per (fn, args, kwargs, deps) and then read from disk.

    `deps` names what the result depends on beyond the arguments, e.g. `zoo.model_id(...)`.
    Set DIFFREP_MEMO=0 to bypass the cache.
    """
    if os.environ.get("DIFFREP_MEMO") == "0":
        return fn(*args, **kwargs)
    path = memo_dir() / f"{fn.__qualname__}-{key(fn, args, kwargs, deps)}.safetensors"
    if path.exists():
        try:
            return _read(path)
        except Exception:  # unreadable: recompute over it
            path.unlink(missing_ok=True)
    result = fn(*args, **kwargs)
    _write(path, result)
    return result


def _write(path: Path, result) -> None:
    if isinstance(result, torch.Tensor):
        tensors, meta = {"__tensor__": result}, {}
    elif isinstance(result, dict):
        tensors = {k: v for k, v in result.items() if isinstance(v, torch.Tensor)}
        meta = {k: v for k, v in result.items() if not isinstance(v, torch.Tensor)}
    else:
        raise TypeError(f"memo stores a tensor or a dict, not {type(result).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"json": json.dumps(meta)})
    os.replace(tmp, path)


def _read(path: Path):
    from safetensors import safe_open

    tensors = load_file(str(path))
    if "__tensor__" in tensors:
        return tensors["__tensor__"]
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["json"])
    return {**meta, **tensors}
