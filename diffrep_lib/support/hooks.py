"""Forward hooks that are always removed: how features come out of a network without changing its `forward`
(STYLE: features through hooks). One helper serves feature extraction (`readout.features`), REPA's capture of
a block's tokens (`methods.repa`) and the block shapes of `models.architecture`.
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
