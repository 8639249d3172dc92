"""DIFT's readout (survey §3.1.1; ch. 4): nearest-neighbour matching of points between two images' feature
maps by cosine similarity, and the percentage of correct keypoints (PCK) that scores it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError, bad, check_int, finite
from ._checks import _maps, _positive, _tensor


def _points(p, name: str, image_size: int, rows: int = 0, shown=None) -> Tensor:
    """Points (K, 2) in pixel (x, y) inside the image (one pixel of slack), K >= rows, finite; errors show
    `shown` (the whole argument) when the points are a selection of it."""
    shown = p if shown is None else shown
    p = _tensor(p, name, "points (K, 2) in pixels (x, y)")
    if p.dim() != 2 or p.shape[1] != 2 or p.is_complex() or p.dtype == torch.bool:
        raise bad(InputError, name, shown, "pass points as a (K, 2) tensor of pixel coordinates (x, y)")
    if len(p) < rows:
        raise bad(InputError, name, shown, f"pass at least {rows} point(s)", "empty")
    if p.is_floating_point() and not torch.isfinite(p).all():
        raise bad(InputError, name, shown, "drop the points with NaN or inf coordinates", "NaN or inf coordinates")
    if len(p) and (float(p.min()) < -1 or float(p.max()) > image_size + 1):
        raise bad(InputError, name, shown, f"pass pixel coordinates (x, y) in [0, {image_size}], the scale of "
                  "image_size (not normalised, not at another resolution)",
                  f"coordinates from {float(p.min()):g} to {float(p.max()):g}")
    return p


def _feature_map(f, name: str) -> Tensor:
    f = _tensor(f, name, "a feature map (C, h, w)")
    if f.dim() != 3 or not f.numel() or f.is_complex() or f.dtype == torch.bool:
        fix = "pass one image's map (C, h, w): maps[i], not the batch" if f.dim() == 4 else \
            "pass one image's feature map (C, h, w)"
        raise bad(InputError, name, f, fix)
    return f


def match_points(src: Tensor, tgt: Tensor, points: Tensor, image_size: int) -> Tensor:
    """DIFT's matching: upsample both feature maps (C, h, w) to the image size, L2-normalise the channels, and
    send each source point (K, 2) in pixel (x, y) to the target pixel of highest cosine similarity."""
    image_size = check_int(image_size, "image_size", low=1, fix="pass the images' side in pixels")
    src, tgt = _feature_map(src, "src"), _feature_map(tgt, "tgt")
    if tgt.shape[0] != src.shape[0]:
        raise bad(InputError, "tgt", tgt, f"pass a target map with the source's {src.shape[0]} channels (the same "
                  "t and layer)")
    finite(src, "src", "repair the source features (NaN or inf: a diverged network upstream)")
    finite(tgt, "tgt", "repair the target features (NaN or inf: a diverged network upstream)")
    points = _points(points, "points", image_size)
    return _match_points(src, tgt, points, image_size)


@torch.no_grad()
def _upsampled(maps: Tensor, image_size: int) -> Tensor:
    """Feature maps (N, C, h, w) at the image size with unit-norm channel vectors: DIFT's dense descriptors."""
    return F.normalize(F.interpolate(maps.float(), size=(image_size, image_size), mode="bilinear",
                                     align_corners=False), dim=1)


def _match_points(src: Tensor, tgt: Tensor, points: Tensor, image_size: int) -> Tensor:
    s, t = (_upsampled(f[None], image_size)[0] for f in (src, tgt))
    return _match_upsampled(s, t, points, image_size)


@torch.no_grad()
def _match_upsampled(s: Tensor, t: Tensor, points: Tensor, image_size: int) -> Tensor:
    px = points.clamp(0, image_size - 1e-3).floor().long()
    query = s[:, px[:, 1], px[:, 0]]                                        # (C, K)
    best = (query.T @ t.flatten(1)).argmax(1)                               # (K,)
    return torch.stack([best % image_size, best // image_size], 1).float() + 0.5


def pck(pred: Tensor, gt: Tensor, threshold: float) -> float:
    """Percentage of correct keypoints: the share of predictions within `threshold` pixels of the truth."""
    pred, gt = _tensor(pred, "pred", "points (K, 2)"), _tensor(gt, "gt", "points (K, 2)")
    if pred.dim() < 2 or pred.shape[-1] != 2 or not pred.numel():
        raise bad(InputError, "pred", pred, "pass at least one predicted point, as a (K, 2) tensor of pixels (x, y)")
    if gt.shape != pred.shape:
        raise bad(InputError, "gt", gt, f"pass one true point per prediction, shape {tuple(pred.shape)}")
    finite(pred, "pred", "drop the points with NaN or inf coordinates")
    finite(gt, "gt", "drop the points with NaN or inf coordinates")
    _positive(threshold, "threshold", "pass a finite distance in pixels >= 0 (DIFT: 0.1 x the image size)", zero=True)
    return ((pred - gt).norm(dim=-1) <= threshold).float().mean().item()


def keypoint_pck(maps: Tensor, keypoints: Tensor, visible: Tensor, pairs: Tensor, image_size: int,
                 threshold: float) -> tuple[float, list[tuple[Tensor, Tensor]]]:
    """DIFT on a set of pairs: maps (N, C, h, w) per image; keypoints (N, S, K, 2) and visible (N, S, K) as toy
    scenes ship them; pairs (P, 4) = (i, slot i, j, slot j). Every keypoint visible in both images is matched
    from i to j. Returns (PCK at `threshold` pixels, [(predicted, true) points per pair])."""
    image_size = check_int(image_size, "image_size", low=1, fix="pass the images' side in pixels")
    _positive(threshold, "threshold", "pass a finite distance in pixels >= 0 (DIFT: 0.1 x the image size)", zero=True)
    maps = _maps(maps, "maps")
    keypoints = _tensor(keypoints, "keypoints", "keypoints (N, S, K, 2)")
    if keypoints.dim() != 4 or keypoints.shape[0] != len(maps) or keypoints.shape[-1] != 2 \
            or not keypoints.is_floating_point():
        raise bad(InputError, "keypoints", keypoints, f"pass keypoints (N, S, K, 2) in pixels (x, y), one row per "
                  f"map (N = {len(maps)}), as toy scenes ship them")
    visible = _tensor(visible, "visible", "a boolean mask (N, S, K)")
    if visible.shape != keypoints.shape[:-1] or visible.dtype != torch.bool:
        raise bad(InputError, "visible", visible, f"pass a bool mask of shape {tuple(keypoints.shape[:-1])}: "
                  "visible.bool() (integer masks would index points, not select them)")
    pairs = _tensor(pairs, "pairs", "pairs (P, 4)")
    if pairs.dim() != 2 or pairs.shape[1] != 4 or not len(pairs) or pairs.is_floating_point() \
            or pairs.dtype == torch.bool:
        raise bad(InputError, "pairs", pairs, "pass at least one pair as integer rows (i, slot i, j, slot j): "
                  "toy_scenes.pairs(scenes, n)")
    n, s = keypoints.shape[:2]
    if int(pairs.min()) < 0 or int(pairs[:, [0, 2]].max()) >= n or int(pairs[:, [1, 3]].max()) >= s:
        raise bad(InputError, "pairs", pairs, f"pass image indices in 0..{n - 1} and slots in 0..{s - 1}")
    a, sa, b, sb = pairs.T                                   # the points matched: sources visible in both images
    _points(keypoints[a, sa][visible[a, sa] & visible[b, sb]], "keypoints", image_size, shown=keypoints)
    used = torch.unique(pairs[:, [0, 2]])                   # each image's map upsampled once, not once per pair
    row = torch.full((n,), -1, dtype=torch.long)
    row[used] = torch.arange(len(used))
    dense = torch.cat([_upsampled(maps[used[k:k + 64]], image_size) for k in range(0, len(used), 64)])
    hits, matches = [], []
    for i, si, j, sj in pairs.tolist():
        both = visible[i, si] & visible[j, sj]
        pred = _match_upsampled(dense[row[i]], dense[row[j]], keypoints[i, si][both], image_size)
        true = keypoints[j, sj][both]
        hits.append((pred - true).norm(dim=-1) <= threshold)
        matches.append((pred, true))
    hits = torch.cat(hits)
    if not len(hits):
        raise bad(InputError, "pairs", pairs, "pass pairs that share a visible keypoint (toy_scenes.pairs picks "
                  "them)", "no keypoint is visible in both images of any pair: PCK is undefined")
    return hits.float().mean().item(), matches
