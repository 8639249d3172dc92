"""The block structure of a backbone, read from the model itself: its blocks in forward order with their
output shapes, its skip connections and where the condition enters (survey Fig. 3; ch. 2, and the module
paths that the features chapter hooks).

    layout(net)               -> Layout(blocks=[(label, module path)], skips=[(from, to)], conditioned=[...])
    trace(net, x, t, y)       -> {label: output shape}, captured by forward hooks that are always removed
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..support.hooks import recording
from .dit import DiT
from .unet import UNet
from .uvit import UViT


@dataclass(frozen=True)
class Layout:
    kind: str
    blocks: tuple            # (label, module path) in the order the forward pass visits them
    skips: tuple = ()        # (label, label): the first block's output is also an input of the second
    conditioned: tuple = ()  # labels of blocks that the embedding of (t, y) modulates directly
    level: dict | None = None  # label -> resolution level (U-Net), for drawing the U


def layout(net) -> Layout:
    """The blocks, skips and conditioning of one of the book's backbones, from its config."""
    if isinstance(net, UNet):
        n = len(net.cfg.channels)
        blocks = [("stem", "stem"), *[(f"down.{i}", f"down.{i}") for i in range(n)], ("mid", "mid.2"),
                  *[(f"up.{i}", f"up.{i}") for i in range(n)], ("out", "out")]
        level = {"stem": 0, "out": 0, "mid": n, **{f"down.{i}": i for i in range(n)},
                 **{f"up.{i}": n - 1 - i for i in range(n)}}
        return Layout("U-Net", tuple(blocks), tuple((f"down.{i}", f"up.{n - 1 - i}") for i in range(n)),
                      tuple(b for b, _ in blocks if b.startswith(("down", "mid", "up"))), level)
    if isinstance(net, DiT):
        blocks = [("patch", "patch"), *[(f"blocks.{i}", f"blocks.{i}") for i in range(net.cfg.depth)],
                  ("final", "final")]
        return Layout("DiT", tuple(blocks), (), tuple(b for b, _ in blocks[1:]))
    if isinstance(net, UViT):
        half = net.cfg.depth // 2
        blocks = [("patch", "patch"), *[(f"in_blocks.{i}", f"in_blocks.{i}") for i in range(half)], ("mid", "mid"),
                  *[(f"out_blocks.{i}", f"out_blocks.{i}") for i in range(half)], ("final", "final")]
        skips = tuple((f"in_blocks.{i}", f"out_blocks.{half - 1 - i}") for i in range(half)) \
            if net.cfg.long_skips else ()
        return Layout("U-ViT", tuple(blocks), skips, ())
    raise TypeError(f"no layout for {type(net).__name__}; the book's backbones are UNet, DiT and UViT")


@torch.no_grad()
def trace(net, x: torch.Tensor | None = None, t=None, y=None) -> dict[str, tuple]:
    """Output shape (without the batch) of every block of layout(net) on one forward pass."""
    lay = layout(net)
    size = getattr(net.cfg, "image_size", 28)
    x = torch.zeros(1, net.cfg.in_channels, size, size) if x is None else x
    t = torch.tensor([500.0]) if t is None else t
    modules = dict(net.named_modules())
    with recording({label: modules[path] for label, path in lay.blocks}, lambda out: tuple(out.shape[1:])) as shapes:
        net(x, t, y)
    return dict(shapes)
