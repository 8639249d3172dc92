"""Disk memoisation of expensive, deterministic evaluations (docs/ARCHITECTURE.md, "Memoisation").

nbval re-executes every notebook papermill has just executed; sample sets, features and sweeps are
therefore stored under DIFFREP_CACHE/memo as ``<qualname>-<key>.safetensors``, so the second execution costs
seconds. Results are a tensor or a dict of tensors and JSON values; tensors go to safetensors, never pickle.

The key is the sha256 of a canonical, deterministic encoding of

* the function: its module, qualname and source, with the values its closure captures and its defaults;
* the arguments: str, int, float (by repr), bool and None exactly; tuples and lists told apart; dicts with
  sorted keys; tensors and numpy arrays by dtype, shape and the sha256 of their bytes (never by repr, which
  elides the middle of large tensors); callables by module, qualname and source. Objects that can only be
  told apart by identity (``nn.Module`` instances, anything whose repr shows a memory address) are refused
  with an `InputError`: memoised functions take names (a zoo model name) and put the model's identity in
  `deps`, e.g. ``deps=(zoo.model_id(name, profile),)``;
* `deps`, encoded the same way;
* the library's code: a sha256 over every .py file of the diffrep_lib package (relative path and source),
  recomputed when a file changes on disk. Editing any library module, such as a sampler in an exercise, recomputes
  every memoised result instead of serving one computed by the old code. (A change made only in memory, such as
  replacing `dr.samplers.SAMPLERS["euler"]` at run time, is not seen: edit the file, or set DIFFREP_MEMO=0.)

Each file stores its full key and a format version in the safetensors metadata; a file written for another
key, of another format, truncated or unreadable is reported with a warning, recomputed and overwritten,
never returned. Metadata round-trips tuples (also nested ones) and dicts with non-string keys exactly. A
write that fails (full disk, read-only cache) leaves any previous file and no temporary file behind, warns,
and still returns the computed result. Set DIFFREP_MEMO=0 to bypass the cache.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import sys
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..errors import CacheError, InputError, bad
from .runtime import atomic_write, cache_dir

FORMAT = "diffrep-memo/2"          # bump when the key encoding or the file layout changes

_NAME_FIX = ("pass a name instead (e.g. a zoo model name) and load the object inside the memoised function; "
             "put the model's identity in deps, e.g. deps=(zoo.model_id(name, profile),)")


def memo_dir() -> Path:
    return cache_dir() / "memo"


def library_digest() -> str:
    """sha256 over the source of every .py file of the diffrep_lib package (relative path and bytes). Recomputed
    whenever a file's size or modification time changes (a stat of each file per call, well under a millisecond
    each), so a module edited and reloaded in a running kernel gives new keys."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix())
    stamp = tuple((p.relative_to(root).as_posix(), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _digest(root, stamp)


@functools.lru_cache(maxsize=8)
def _digest(root: Path, stamp: tuple) -> str:
    h = hashlib.sha256()
    for rel, _, _ in stamp:
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def key(fn, args: tuple, kwargs: dict, deps: tuple) -> str:
    """sha256 (hex) of the function (name, source, closure), arguments, deps and the library's code."""
    where = getattr(fn, "__qualname__", type(fn).__name__)
    payload = [FORMAT,
               _encode(fn, f"memo.cached({where}): the memoised function", set()),
               [_encode(a, f"memo.cached({where}): argument {i}", set()) for i, a in enumerate(args)],
               sorted([k, _encode(v, f"memo.cached({where}): argument {k!r}", set())] for k, v in kwargs.items()),
               _encode(tuple(deps), f"memo.cached({where}): deps", set()),
               library_digest()]
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(fn, *args, deps: tuple = (), **kwargs):
    """``fn(*args, **kwargs)``, computed once per (fn, args, kwargs, deps, library code) and then read from disk.

    `deps` names what the result depends on beyond the arguments, e.g. `zoo.model_id(...)`.
    Set DIFFREP_MEMO=0 to bypass the cache.
    """
    if os.environ.get("DIFFREP_MEMO") == "0":
        return fn(*args, **kwargs)
    k = key(fn, args, kwargs, deps)
    path = memo_dir() / f"{fn.__qualname__}-{k}.safetensors"
    if path.exists():
        try:
            return _read(path, k)
        except CacheError as e:
            warnings.warn(f"{e}; recomputing and overwriting it", RuntimeWarning, stacklevel=2)
    result = fn(*args, **kwargs)
    _write(path, result, k, f"{getattr(fn, '__module__', '')}.{fn.__qualname__}")
    return result


# ------------------------------------------------------------------------------------------ key encoding

def _tensor_digest(t: torch.Tensor) -> str:
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    data = t.view(torch.uint8).numpy() if t.numel() else b""
    return hashlib.sha256(data).hexdigest()


def _qualified(obj) -> list:
    return [getattr(obj, "__module__", None) or "", getattr(obj, "__qualname__", None) or type(obj).__qualname__]


def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):                     # builtins, lambdas typed at a prompt
        return ""


def _encode(x, where: str, seen: set):
    """A JSON-able, type-tagged and deterministic encoding of `x`; `where` names it in error messages."""
    if x is None:
        return ["none"]
    if isinstance(x, bool):
        return ["bool", x]
    if type(x) is int:
        return ["int", str(x)]
    if type(x) is float or (isinstance(x, float) and type(x).__module__ == "numpy"):
        return ["float", repr(float(x))]
    if type(x) is str:
        return ["str", x]
    if isinstance(x, torch.Tensor):
        if isinstance(x, torch.nn.Parameter):
            x = x.data
        return ["tensor", str(x.dtype), list(x.shape), _tensor_digest(x)]
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(x)
        if a.dtype.hasobject:
            raise bad(InputError, where, x, "pass arrays of numbers, or a list of the objects",
                      "an object array is hashed by its pointers")
        return ["ndarray" if isinstance(x, np.ndarray) else "npscalar", a.dtype.str, list(a.shape),
                hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()]
    if isinstance(x, torch.nn.Module):
        raise bad(InputError, where, x, _NAME_FIX, "a model has no stable key: its weights are not in its repr")
    if id(x) in seen:
        return ["cycle"]
    seen = seen | {id(x)}
    if isinstance(x, tuple):
        items = [_encode(v, f"{where}[{i}]", seen) for i, v in enumerate(x)]
        fields = getattr(x, "_fields", None)
        return ["namedtuple", _qualified(type(x)), list(fields), items] if fields is not None else ["tuple", items]
    if isinstance(x, list):
        return ["list", [_encode(v, f"{where}[{i}]", seen) for i, v in enumerate(x)]]
    if isinstance(x, dict):
        items = [[_encode(k, f"{where} key", seen), _encode(v, f"{where}[{k!r}]", seen)] for k, v in x.items()]
        return ["dict", sorted(items, key=lambda kv: json.dumps(kv[0]))]
    if isinstance(x, (set, frozenset)):
        return [type(x).__name__, sorted((_encode(v, f"{where} item", seen) for v in x), key=json.dumps)]
    if isinstance(x, (bytes, bytearray)):
        return ["bytes", hashlib.sha256(x).hexdigest()]
    if isinstance(x, functools.partial):
        return ["partial", _encode(x.func, f"{where}.func", seen), _encode(x.args, f"{where}.args", seen),
                _encode(x.keywords, f"{where}.keywords", seen)]
    if inspect.ismethod(x):
        return ["method", _encode(x.__func__, where, seen), _encode(x.__self__, f"{where}.__self__", seen)]
    if inspect.isfunction(x):
        cells = []
        for name, cell in zip(x.__code__.co_freevars, x.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:                       # an unfilled cell
                cells.append([name, ["empty"]])
                continue
            cells.append([name, _encode(value, f"{where}: closure variable {name!r}", seen)])
        return ["function", *_qualified(x), _source(x), cells,
                _encode(x.__defaults__, f"{where}: defaults", seen),
                _encode(x.__kwdefaults__, f"{where}: keyword defaults", seen)]
    if inspect.isclass(x) or inspect.isbuiltin(x) or inspect.isroutine(x):
        return ["callable", *_qualified(x), _source(x)]
    if dataclasses.is_dataclass(x):
        return ["dataclass", _qualified(type(x)),
                [[f.name, _encode(getattr(x, f.name), f"{where}.{f.name}", seen)] for f in dataclasses.fields(x)]]
    text = repr(x)
    if " at 0x" in text:
        raise bad(InputError, where, x, _NAME_FIX, "its repr shows a memory address, so it has no stable key")
    if "..." in text:
        raise bad(InputError, where, x, "pass its parts (tensors, numbers, strings) as arguments",
                  "its repr is elided, so two different values could share a key")
    return ["object", _qualified(type(x)), text]


# ------------------------------------------------------------------------------------------ files

def _to_json(v, where: str):
    """`v` as JSON, with tuples tagged {"__tuple__": [...]} and dicts of non-string keys as {"__dict__": pairs}."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else {"__float__": repr(float(v))}
    if isinstance(v, tuple):
        return {"__tuple__": [_to_json(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [_to_json(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        if all(type(k) is str for k in v) and not {"__tuple__", "__dict__", "__float__"} & set(v):
            return {k: _to_json(x, f"{where}[{k!r}]") for k, x in v.items()}
        return {"__dict__": [[_to_json(k, f"{where} key"), _to_json(x, f"{where}[{k!r}]")] for k, x in v.items()]}
    why = ("a tensor is stored only as a top-level value of the result dict" if isinstance(v, torch.Tensor)
           else f"a {type(v).__name__} is not a tensor, str, int, float, bool, None, list, tuple or dict")
    raise bad(InputError, where, v, "return tensors at the top level of the result dict and plain Python values "
              "(convert numpy scalars with float(...) or int(...), tensors inside containers with .tolist())", why)


def _from_json(v):
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_from_json(x) for x in v["__tuple__"])
        if set(v) == {"__dict__"}:
            return {_from_json(k): _from_json(x) for k, x in v["__dict__"]}
        if set(v) == {"__float__"}:
            return float(v["__float__"])
        return {k: _from_json(x) for k, x in v.items()}
    return v


def _stored(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu().contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():     # a view: safetensors wants its own storage
        t = t.clone()
    return t


def _write(path: Path, result, full_key: str, fn_name: str) -> None:
    if isinstance(result, torch.Tensor):
        tensors, meta, order = {"__tensor__": result}, {}, []
    elif isinstance(result, dict):
        for k in result:
            if type(k) is not str or k == "__tensor__":
                raise bad(InputError, f"{fn_name}: result key", k, "use string keys other than '__tensor__'")
        tensors = {k: v for k, v in result.items() if isinstance(v, torch.Tensor)}
        meta = {k: _to_json(v, f"{fn_name}: result[{k!r}]") for k, v in result.items()
                if not isinstance(v, torch.Tensor)}
        order = list(result)
    else:
        raise bad(InputError, f"{fn_name}: result", result,
                  "return a tensor or a dict of tensors and JSON values (str, numbers, lists, tuples, dicts)")
    metadata = {"format": FORMAT, "key": full_key, "fn": fn_name, "order": json.dumps(order),
                "json": json.dumps(meta, allow_nan=False)}
    data = save({k: _stored(v) for k, v in tensors.items()}, metadata=metadata)
    try:
        atomic_write(path, data)
    except OSError as e:                                  # a full disk or a read-only cache: lose the memo, not the result
        warnings.warn(f"memo: could not store {path} ({e}); the result is returned but not memoised",
                      RuntimeWarning, stacklevel=3)


def _read(path: Path, full_key: str):
    """The stored result, or CacheError if the file is unreadable, truncated, of another format or another key."""
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise CacheError(f"memo: {path}: written in format {metadata.get('format')!r}, not {FORMAT!r}")
            if metadata.get("key") != full_key:
                raise CacheError(f"memo: {path}: written for another key ({metadata.get('key')!r}), "
                                 f"a foreign or renamed file")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = _from_json(json.loads(metadata["json"]))
            order = json.loads(metadata["order"])
    except CacheError:
        raise
    except Exception as e:                                # truncated, not safetensors, bad JSON, I/O error
        raise CacheError(f"memo: {path}: unreadable ({type(e).__name__}: {e})") from e
    if "__tensor__" in tensors:
        return tensors["__tensor__"]
    values = {**meta, **tensors}
    if set(order) != set(values):
        raise CacheError(f"memo: {path}: its entries {sorted(values)} do not match its index {sorted(order)}")
    return {k: values[k] for k in order}
