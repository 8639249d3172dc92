"""Figures of the book: opaque backgrounds (readable in dark mode), image grids, shared styling."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import torch


def setup() -> None:
    """Matplotlib defaults for the book: white, opaque figures; modest sizes; no top/right spines."""
    matplotlib.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "savefig.transparent": False, "figure.dpi": 100, "figure.figsize": (6.4, 3.6),
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    })


def grid(x: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Images (N, 1, H, W) in [-1, 1] tiled into one (rows*H', nrow*W') array in [0, 1]."""
    x = x.detach().float().clamp(-1, 1).add(1).div(2)
    n, _, h, w = x.shape
    rows = -(-n // nrow)
    out = torch.ones(rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[i, 0]
    return out


def show_images(ax, x: torch.Tensor, nrow: int, title: str | None = None) -> None:
    ax.imshow(grid(x, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def new_figure(*args, **kwargs):
    """plt.subplots with the book's style applied, constrained layout on."""
    setup()
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)
