"""Scenes described by tokens, one per object (ch. 11): the data and training of the token-conditioned U-Net that
diffusion self-guidance edits (Epstein et al. 2023; survey §3.2.4).

A scene of the book's toy generator with exactly one shape is described by two tokens of 7 numbers each:

    object:      one-hot of its class (disc, square, triangle, cross), then its RGB colour in [0, 1]
    background:  four zeros, then the background's RGB colour

The colours are read off the image (the mean over the scene's mask), so they are what the network sees. Where the
object is, and how large, is left out on purpose: the network places it, and its cross-attention shows where.
The zoo task 'denoise_tokens' trains L_simple with the whole token set dropped to the null (zero) vector with
probability p_uncond, so that classifier-free guidance works on the result.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..core import losses
from ..data import toy_scenes
from ..zoo import recipes, registry
from .rcg import drop_rows

SPLITS = {"train": (20_000, 10), "test": (2_000, 11)}    # (scenes, seed): one-object scenes, disjoint seeds


def tokens(scenes: toy_scenes.Scenes) -> Tensor:
    """The (N, 2, 7) tokens of one-object scenes: [one-hot class, RGB] of the object, [0, 0, 0, 0, RGB] of the
    background, each colour the mean of the image over its region, in [0, 1]."""
    if (scenes.shape_class[:, 1:] >= 0).any() or (scenes.shape_class[:, 0] < 0).any():
        raise ValueError("tokens describe scenes with exactly one shape: toy_scenes.generate(n, max_shapes=1)")
    rgb = (scenes.images + 1) / 2                                        # (N, 3, H, W) in [0, 1]
    obj = (scenes.masks > 0)[:, None].float()
    colour = lambda m: (rgb * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1)
    onehot = torch.nn.functional.one_hot(scenes.shape_class[:, 0], len(toy_scenes.CLASSES) - 1).float()
    return torch.stack([torch.cat([onehot, colour(obj)], 1),
                        torch.cat([torch.zeros_like(onehot), colour(1 - obj)], 1)], 1)


@functools.lru_cache(maxsize=2)
def scenes(split: str = "train") -> toy_scenes.Scenes:
    """The one-object scenes of a split (20,000 train, 2,000 test), from their fixed seeds."""
    n, seed = SPLITS[split]
    return toy_scenes.generate(n, seed=seed, max_shapes=1)


def token_data(r) -> tuple[Tensor, Tensor]:
    """The training set: one-object scenes and their flattened tokens (N, 14)."""
    s = scenes("train")
    return s.images, tokens(s).flatten(1)


def token_terms(net, x, y, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """L_simple of the U-Net told each scene's tokens, the whole set dropped with probability p_uncond."""
    y = drop_rows(y, recipe.p_uncond, generator)
    return losses.denoising_terms(net, x, y, abar=abar, prediction=recipe.prediction, generator=generator)


@torch.no_grad()
def held_out(model, r) -> dict:
    """The fixed-noise denoising loss on 1,000 test scenes, told their tokens and told none: the gap is what the
    tokens are worth to the network."""
    s = scenes("test")[:1000]
    c = tokens(s).flatten(1)
    out = {}
    for key, cond in (("test_denoise_loss", c), ("test_denoise_loss_null", torch.zeros_like(c))):
        terms = losses.denoising_terms(model, s.images, cond, abar=recipes.abar(r), prediction=r.prediction,
                                       generator=torch.Generator().manual_seed(99))
        out[key] = round(terms["denoise"].mean().item(), 5)
    return out


def golden_call(model, x, t, y):
    """The golden fingerprint: the network told the tokens of the first test scenes."""
    return model(x, t, tokens(scenes("test")[:len(x)]).flatten(1))


registry.register(registry.METHODS, "denoise_tokens", registry.Method(
    terms=token_terms, evaluate=held_out, call=golden_call, data=token_data))
