"""Figures of the book: opaque backgrounds (readable in dark mode), image grids, shared styling."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import torch

from .models.architecture import layout, trace


def setup() -> None:
    """Matplotlib defaults for the book: white, opaque figures; modest sizes; no top/right spines."""
    matplotlib.rcParams.update({
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "savefig.transparent": False, "figure.dpi": 100, "figure.figsize": (6.4, 3.6),
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    })


def grid(x: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Images (N, 1, H, W) or (N, 3, H, W) in [-1, 1] tiled into one array in [0, 1]: (rows*H', nrow*W') for grey
    images, (rows*H', nrow*W', 3) for colour ones."""
    x = x.detach().float().clamp(-1, 1).add(1).div(2)
    n, c, h, w = x.shape
    rows = -(-n // nrow)
    out = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i]
    return out[0] if c == 1 else out.permute(1, 2, 0)


def show_images(ax, x: torch.Tensor, nrow: int, title: str | None = None) -> None:
    """Images (N, 1 or 3, H, W) in [-1, 1] as one grid of `nrow` columns on ax."""
    ax.imshow(grid(x, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def colourise(mask: torch.Tensor) -> torch.Tensor:
    """A class mask (H, W) of small integers as an RGB image (H, W, 3) in [0, 1], one tab10 colour per class."""
    palette = torch.tensor(plt.get_cmap("tab10").colors, dtype=torch.float32)
    return palette[mask.long() % len(palette)]


def new_figure(*args, **kwargs):
    """plt.subplots with the book's style applied, constrained layout on."""
    setup()
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def draw_backbone(ax, net, title: str | None = None) -> None:
    """A block diagram of one of the book's backbones, drawn from the model (architecture.layout and
    trace): a box per block labelled with its output shape, arcs for skip connections, and marks where the
    embedding of (t, y) enters. U-Net boxes sit at the height of their resolution level, which draws the U."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


    lay, shapes = layout(net), trace(net)
    xs = {label: i for i, (label, _) in enumerate(lay.blocks)}
    ys = {label: -1.2 * (lay.level or {}).get(label, 0) for label in xs}
    for label, i in xs.items():
        shape = shapes[label]
        text = "×".join(map(str, shape))
        ax.add_patch(FancyBboxPatch((i - 0.42, ys[label] - 0.35), 0.84, 0.7, boxstyle="round,pad=0.02",
                                    fc="#dbe8f6" if label in lay.conditioned else "#eeeeee", ec="#333333", lw=0.8))
        ax.text(i, ys[label] + 0.1, label, ha="center", va="center", fontsize=7)
        ax.text(i, ys[label] - 0.15, text, ha="center", va="center", fontsize=6, color="#444444")
    for a, b in zip(list(xs), list(xs)[1:]):
        ax.add_patch(FancyArrowPatch((xs[a] + 0.42, ys[a]), (xs[b] - 0.42, ys[b]), arrowstyle="-|>",
                                     mutation_scale=7, lw=0.8, color="#333333"))
    arc_top = 0.35
    for a, b in lay.skips:                  # a quadratic Bezier in data coordinates, arrowhead at the end
        (x0, y0), (x1, y1) = (xs[a], ys[a] + 0.35), (xs[b], ys[b] + 0.35)
        lift = 0.25 * (x1 - x0) + 0.3
        u = torch.linspace(0, 1, 50)[:, None]
        p0, p1, p2 = torch.tensor([x0, y0]), torch.tensor([(x0 + x1) / 2, max(y0, y1) + 2 * lift]), torch.tensor([x1, y1])
        curve = (1 - u) ** 2 * p0 + 2 * u * (1 - u) * p1 + u ** 2 * p2
        ax.plot(curve[:, 0], curve[:, 1], color="C3", lw=1.0)
        ax.annotate("", xy=tuple(curve[-1].tolist()), xytext=tuple(curve[-4].tolist()),
                    arrowprops=dict(arrowstyle="-|>", color="C3", lw=1.0, mutation_scale=8))
        arc_top = max(arc_top, curve[:, 1].max().item())
    bottom = min(ys.values()) - 0.9
    if lay.conditioned:
        ax.text(-0.4, bottom, "c = emb(t) + emb(y)", fontsize=7, color="C0", va="center")
        for label in lay.conditioned:
            ax.plot([xs[label], xs[label]], [bottom + 0.15, ys[label] - 0.37], color="C0", lw=0.6, ls=":")
    else:
        ax.text(-0.4, bottom, "t and y enter as tokens beside the patches (no modulation)", fontsize=7,
                color="C0", va="center")
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_ylim(bottom - 0.4, max(max(ys.values()) + 0.6, arc_top + 0.2))
    ax.set_axis_off()
    legend = "".join([", red: skip connections" if lay.skips else "",
                      ", blue: blocks modulated by c" if lay.conditioned else ""])
    ax.set_title(title or f"{lay.kind}: blocks with their output shapes{legend}", fontsize=9)


def draw_tree(ax, root: str, children: dict, leaf_colors: dict | None = None) -> None:
    """A two-level tree drawn left to right: `root`, its groups (the keys of `children`) and each group's
    leaves (the values), e.g. the survey's Fig. 5 hierarchy. `leaf_colors` maps a leaf to a colour."""
    leaf_colors = leaf_colors or {}
    leaves = [(g, leaf) for g, items in children.items() for leaf in items]
    n = max(len(leaves), 1)
    y_leaf = {item: 1 - (i + 0.5) / n for i, item in enumerate(leaves)}
    y_group = {g: sum(y_leaf[(g, l)] for l in items) / max(len(items), 1) for g, items in children.items()}
    y_root = sum(y_group.values()) / max(len(y_group), 1)
    box = dict(boxstyle="round,pad=0.3", fc="#eeeeee", ec="#333333", lw=0.8)
    ax.text(0.02, y_root, root, ha="left", va="center", fontsize=9, bbox=box, wrap=True)
    for g, items in children.items():
        ax.plot([0.24, 0.36], [y_root, y_group[g]], color="#666666", lw=0.8)
        ax.text(0.37, y_group[g], g, ha="left", va="center", fontsize=8.5, bbox={**box, "fc": "#dbe8f6"})
        for leaf in items:
            ax.plot([0.62, 0.70], [y_group[g], y_leaf[(g, leaf)]], color="#999999", lw=0.6)
            ax.text(0.71, y_leaf[(g, leaf)], leaf, ha="left", va="center", fontsize=8,
                    color=leaf_colors.get(leaf, "#222222"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()


def draw_pipeline(ax, boxes: dict, arrows: list, colors: dict | None = None) -> None:
    """A block diagram: `boxes` maps a key to (text, (x, y)) in axes coordinates [0, 1]^2; `arrows` lists
    (from_key, to_key, label) drawn as labelled arrows from box edge to box edge (label may be ''); `colors` maps a
    key to its box colour. Chapter 9 draws the survey's Fig. 6 framework from its own pipeline with it."""
    colors = colors or {}
    texts = {}
    for key, (text, (x, y)) in boxes.items():
        texts[key] = ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=3,
                             bbox=dict(boxstyle="round,pad=0.4", fc=colors.get(key, "#eeeeee"), ec="#333333", lw=0.8))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.figure.canvas.draw()                      # lay the boxes out, so that arrows can end at their edges
    to_data = ax.transData.inverted()
    half = {}
    for key, t in texts.items():                 # half width and height of each box, in axes coordinates
        (x0, y0), (x1, y1) = to_data.transform(t.get_bbox_patch().get_window_extent())
        half[key] = ((x1 - x0) / 2, (y1 - y0) / 2)

    def edge(key, dx, dy):                       # where the ray from the box centre along (dx, dy) leaves the box
        hw, hh = half[key]
        k = min(hw / abs(dx) if dx else float("inf"), hh / abs(dy) if dy else float("inf"))
        x, y = boxes[key][1]
        return x + k * dx, y + k * dy

    for a, b, label in arrows:
        (xa, ya), (xb, yb) = boxes[a][1], boxes[b][1]
        start, end = edge(a, xb - xa, yb - ya), edge(b, xa - xb, ya - yb)
        ax.annotate("", xy=end, xytext=start, zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0, shrinkA=2, shrinkB=2))
        if label:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.04, label, ha="center", va="bottom",
                    fontsize=7.5, color="#444444", style="italic", zorder=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()


def source(obj):
    """The source of a library function or class as highlighted code (a notebook shows the method it runs; long
    lines wrap on the page)."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
