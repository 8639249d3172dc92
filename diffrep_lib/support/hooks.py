"""Forward hooks that are always removed: how features come out of a network without changing its `forward`
(STYLE: features through hooks). One helper serves feature extraction (`readout.features`), REPA's capture of
a block's tokens (`methods.repa`) and the block shapes of `models.architecture`; `forward_until` ends a forward
pass once the layers being read have run, so that a read of the encoder skips the decoder.
"""
from __future__ import annotations

import contextlib

from torch import nn


def first(out):
    """A module's main output: the first element of a tuple (diffusers blocks return tuples), else the output."""
    return out[0] if isinstance(out, (tuple, list)) else out


@contextlib.contextmanager
def recording(modules: dict[str, nn.Module], transform=first):
    """Record transform(output) of each named module during the forward passes inside the block.

    Yields a dict {name: latest recorded value}; one hook per name, removed on exit, also after an error.
    The default transform keeps the autograd graph (REPA needs it); pass e.g. `lambda o: first(o).detach()`
    to read detached activations."""
    store: dict = {}
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: store.__setitem__(name, transform(out)))
               for name, m in modules.items()]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


class _Reached(Exception):
    """Raised by `forward_until`'s hooks once every awaited module has run: ends the forward pass."""


@contextlib.contextmanager
def forward_until(modules):
    """Yields a function `run`: run(fn, ...) calls fn with the given arguments so that it stops as soon as every
    module of `modules` has returned, the rest of the forward pass skipped (the layers after the last one read).
    run returns fn's result, or None when it was cut short. Enter it inside `recording` (hooks run in the order
    they were registered, so the recording hook sees the last module's output first). A module called twice in
    one pass is awaited once: the recording then holds its first call."""
    modules = list(dict.fromkeys(modules))
    awaited = {id(m) for m in modules}
    seen: set = set()

    def hook(module, args, out):
        seen.add(id(module))
        if seen >= awaited:
            raise _Reached

    handles = [m.register_forward_hook(hook) for m in modules]

    def run(fn, *args, **kwargs):
        seen.clear()
        try:
            return fn(*args, **kwargs)
        except _Reached:
            return None

    try:
        yield run
    finally:
        for h in handles:
            h.remove()
