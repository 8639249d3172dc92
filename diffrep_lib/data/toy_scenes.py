"""Toy scenes: a procedural, seeded RGB data set with exact labels for dense tasks (ch. 4: segmentation,
correspondence, depth order).

Each 32x32 scene has a background colour and 1-3 shapes (disc, square, triangle, cross) of random colour, size
and position, painted back to front so later shapes occlude earlier ones. Every scene ships:

- `masks` (N, H, W): the class of the visible surface at each pixel (0 = background, 1..4 = CLASSES[1:]);
- `depth` (N, H, W): the painting order of the visible surface (0 = background, 1 = farthest shape, ...);
- `keypoints` (N, S, 4, 2) in pixel (x, y), `kp_visible` (N, S, 4) and `shape_class` (N, S) (-1: no shape):
  four points per shape that correspond across every instance of its class (a square's corners, a triangle's
  vertices and centroid, a cross's arm tips, a disc's top/right/bottom/left), visible unless occluded.

Generated in well under a second for thousands of scenes.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..errors import InputError, bad, check_int

CLASSES = ("background", "disc", "square", "triangle", "cross")
KEYPOINTS = {  # unit-shape coordinates (x right, y down), scaled by the shape's radius around its centre
    "disc": [(0, -1), (1, 0), (0, 1), (-1, 0)],
    "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
    "triangle": [(0, -1), (1, 1), (-1, 1), (0, 1 / 3)],
    "cross": [(0, -1), (1, 0), (0, 1), (-1, 0)],
}


@dataclass(frozen=True)
class Scenes:
    images: Tensor      # (N, 3, H, W) in [-1, 1]
    masks: Tensor       # (N, H, W) long, class of the visible surface
    depth: Tensor       # (N, H, W) long, painting order of the visible surface
    keypoints: Tensor   # (N, S, 4, 2) float, pixel coordinates (x, y)
    kp_visible: Tensor  # (N, S, 4) bool
    shape_class: Tensor  # (N, S) long, class index of shape s, -1 if the scene has fewer shapes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx) -> "Scenes":
        """The scenes at idx (a slice, index tensor or list), every label field alike."""
        return Scenes(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def _inside(kind: str, dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    """Pixels inside a shape of radius r centred at the origin of (dx, dy): (N, H, W) bool."""
    if kind == "disc":
        return dx ** 2 + dy ** 2 <= r ** 2
    if kind == "square":
        return (dx.abs() <= r) & (dy.abs() <= r)
    if kind == "triangle":      # apex up at (0, -r), base from (-r, r) to (r, r)
        return (dy <= r) & (2 * dx.abs() <= dy + r)
    if kind == "cross":
        arm = r / 3
        return ((dx.abs() <= arm) & (dy.abs() <= r)) | ((dy.abs() <= arm) & (dx.abs() <= r))
    raise bad(InputError, "kind", kind, f"choose one of {list(CLASSES[1:])}", why="unknown shape")




def generate(n: int, seed: int = 0, size: int = 32, max_shapes: int = 3, noise: float = 0.04) -> Scenes:
    """n toy scenes from one seed (the same seed gives the same scenes)."""
    n = check_int(n, "n", low=1, fix="pass the number of scenes to generate, e.g. generate(1000)")
    seed = check_int(seed, "seed", low=None, fix="pass an integer seed, e.g. generate(n, seed=0)")
    size = check_int(size, "size", low=8, fix="pass the side of the square images in pixels, e.g. size=32 (the book's)")
    max_shapes = check_int(max_shapes, "max_shapes", low=1, fix="pass how many shapes a scene may hold at most, e.g. 3")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise bad(InputError, "noise", noise, "pass the standard deviation of the pixel noise, e.g. 0.04",
                  why="need a finite number >= 0")
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(shape, generator=g)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    background = 0.15 + 0.25 * u(n, 3)                                   # dark, slightly coloured
    images = background[:, :, None, None].expand(n, 3, size, size).clone()
    masks = torch.zeros(n, size, size, dtype=torch.long)
    depth = torch.zeros(n, size, size, dtype=torch.long)
    count = 1 + (u(n) * max_shapes).long().clamp(max=max_shapes - 1)     # 1..max_shapes shapes
    shape_class = torch.full((n, max_shapes), -1, dtype=torch.long)
    keypoints = torch.zeros(n, max_shapes, 4, 2)
    kp_visible = torch.zeros(n, max_shapes, 4, dtype=torch.bool)
    kinds = CLASSES[1:]
    cxs, cys = torch.zeros(n, max_shapes), torch.zeros(n, max_shapes)
    for s in range(max_shapes):
        present = s < count
        cls = (u(n) * len(kinds)).long().clamp(max=len(kinds) - 1)
        r = size * (0.12 + 0.13 * u(n))                                 # radius 3.8..8 pixels at size 32
        cx = r + (size - 2 * r) * u(n)
        cy = r + (size - 2 * r) * u(n)
        cxs[:, s], cys[:, s] = cx, cy
        colour = 0.35 + 0.65 * u(n, 3)
        dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
        inside = torch.zeros(n, size, size, dtype=torch.bool)
        for k, kind in enumerate(kinds):
            sel = (cls == k) & present
            inside[sel] = _inside(kind, dx[sel], dy[sel], r[sel, None, None])
            unit = torch.tensor(KEYPOINTS[kind])
            keypoints[sel, s] = torch.stack([cx[sel], cy[sel]], -1)[:, None] + r[sel, None, None] * unit[None]
        images = torch.where(inside[:, None], colour[:, :, None, None], images)
        masks = torch.where(inside, cls[:, None, None] + 1, masks)
        depth = torch.where(inside, torch.full_like(depth, s + 1), depth)
        shape_class[present, s] = cls[present]
    # a keypoint is visible when its shape is on top just inside it (1.5 px towards the centre: the point itself
    # lies on the outline) and not occluded by a later shape
    centres = torch.stack([cxs, cys], -1)[:, :, None]
    towards = centres - keypoints
    inner = keypoints + 1.5 * towards / towards.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    px = inner.clamp(0, size - 1e-3).floor().long()
    idx = torch.arange(n)[:, None, None]
    on_top = depth[idx, px[..., 1], px[..., 0]] == torch.arange(1, max_shapes + 1)[None, :, None]
    kp_visible = on_top & (shape_class[..., None] >= 0)
    images = images + noise * torch.randn(images.shape, generator=g)
    return Scenes(images=(images.clamp(0, 1) * 2 - 1), masks=masks, depth=depth, keypoints=keypoints,
                  kp_visible=kp_visible, shape_class=shape_class)


def pairs(scenes: Scenes, n: int, seed: int = 0) -> Tensor:
    """Up to n correspondence pairs (P, 4) = (image i, shape slot in i, image j, shape slot in j): a shape class
    that occurs exactly once in each of the two scenes (so the true match is unambiguous), with at least one
    keypoint visible in both. Drawn in a seeded random order, each (i, j) at most once."""
    if not isinstance(scenes, Scenes):
        raise bad(InputError, "scenes", scenes, "pass a Scenes from toy_scenes.generate(...) or toy_scenes.split(...)")
    n = check_int(n, "n", low=1, fix="pass the number of pairs wanted, e.g. pairs(scenes, 500)")
    seed = check_int(seed, "seed", low=None, fix="pass an integer seed, e.g. pairs(scenes, n, seed=0)")
    g = torch.Generator().manual_seed(seed)
    classes = scenes.shape_class
    counts = torch.stack([(classes == c).sum(1) for c in range(len(CLASSES) - 1)], 1)      # (N, classes)
    out, seen = [], set()
    order = torch.randperm(len(scenes) * len(scenes), generator=g)
    for k in order.tolist():
        i, j = divmod(k, len(scenes))
        if i == j or (min(i, j), max(i, j)) in seen:
            continue
        shared = torch.nonzero((counts[i] == 1) & (counts[j] == 1)).flatten()
        for c in shared.tolist():
            si, sj = int((classes[i] == c).nonzero()), int((classes[j] == c).nonzero())
            if (scenes.kp_visible[i, si] & scenes.kp_visible[j, sj]).any():
                out.append((i, si, j, sj))
                seen.add((min(i, j), max(i, j)))
                break
        if len(out) == n:
            break
    return torch.tensor(out, dtype=torch.long).reshape(-1, 4)


def load(n: int, seed: int = 0, size: int = 32):
    """n toy scenes as a `datasets.Dataset` with columns image (3, H, W), mask, depth and scene-level
    keypoints, for readers who prefer the Hub interface."""
    import datasets

    s = generate(n, seed, size)
    return datasets.Dataset.from_dict({"image": s.images.numpy(), "mask": s.masks.numpy(), "depth": s.depth.numpy(),
                                       "keypoints": s.keypoints.numpy(), "kp_visible": s.kp_visible.numpy(),
                                       "shape_class": s.shape_class.numpy()})


SPLITS = {"train": (20_000, 0), "test": (2_000, 1)}   # (number of scenes, seed): disjoint seeds


def split(name: str = "train") -> Scenes:
    """The book's fixed splits of toy scenes (the zoo trains on 'train'; chapters evaluate on 'test'). Generated
    once per process (20,000 scenes take seconds) and shared: index it, do not modify it in place."""
    if not isinstance(name, str) or name not in SPLITS:
        raise bad(InputError, "name", name, f"choose one of {sorted(SPLITS)}", why="unknown split")
    return _split(name)


@functools.lru_cache(maxsize=2)
def _split(name: str) -> Scenes:
    n, seed = SPLITS[name]
    return generate(n, seed)


