"""Pretrained image encoders behind one interface (chs. 9 and 12): what self-labelled guidance clusters and what
REPA aligns a DiT to.

    enc = encoders.load("simclr_fmnist", profile)          # the book's SimCLR encoder from the zoo
    enc = encoders.HubEncoder(Dinov2Model.from_pretrained("facebook/dinov2-small"))   # in Colab
    tokens, pooled = enc.tokens(x), enc.pooled(x)          # (N, T, D) patch tokens, (N, D) image embedding

Images go in as the book stores them: (N, C, H, W) in [-1, 1]. Encoders are frozen (eval mode, no gradients).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, bad
from .. import zoo

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ZooEncoder(nn.Module):
    """A zoo encoder (models.Encoder): tokens are its last feature map, pooled is their mean."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.dim = net.dim

    @torch.no_grad()
    def tokens(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.no_grad()
    def pooled(self, x: Tensor) -> Tensor:
        return self.net(x).mean(1)


class HubEncoder(nn.Module):
    """A `transformers` vision transformer (DINOv2, ViT, ...): images are resized to the model's image size, made
    RGB and normalised with ImageNet statistics; tokens are the last hidden states without the leading CLS and
    register tokens, pooled is the CLS token (after the final layer norm, as DINOv2's probes use it)."""

    def __init__(self, model: nn.Module, image_size: int | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        cfg = model.config
        self.image_size = image_size or cfg.image_size
        self.skip = 1 + getattr(cfg, "num_register_tokens", 0)
        self.dim = cfg.hidden_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _hidden(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise bad(InputError, "x", x, "pass 1- or 3-channel images (N, C, H, W)", f"{x.shape[1]} channels")
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.model(pixel_values=x).last_hidden_state

    @torch.no_grad()
    def tokens(self, x: Tensor) -> Tensor:
        return self._hidden(x)[:, self.skip:]

    @torch.no_grad()
    def pooled(self, x: Tensor) -> Tensor:
        return self._hidden(x)[:, 0]


def load(name: str = "simclr_fmnist", profile: str = "auto", seed: int = 0, *, init: str = "trained") -> ZooEncoder:
    """A zoo encoder behind the common interface; init='random' gives the same architecture untrained (the
    random-teacher control of REPA)."""
    return ZooEncoder(zoo.load(name, profile, seed, init=init))


def teacher(r) -> ZooEncoder:
    """The frozen teacher encoder of a recipe (`r.teacher` at the recipe's profile, `r.teacher_init` weights)."""
    return load(r.teacher, r.profile, init=r.teacher_init)


class WithTeacher(nn.Module):
    """A denoiser with the modules its training objective trains beside it, reading a frozen teacher encoder
    (REPA's projector, online guidance's prototypes). `forward` is the denoiser's, so the training loop, the EMA
    and the samplers see an ordinary denoiser. The teacher is held outside the module tree: it is neither
    optimised nor saved with the weights."""

    def __init__(self, net: nn.Module, teacher=None):
        super().__init__()
        self.net = net
        self._teacher = [teacher]                  # a list: not a submodule

    @property
    def teacher(self):
        if self._teacher[0] is None:
            raise RuntimeError("this model was loaded without its teacher encoder; only training needs it")
        return self._teacher[0]

    @property
    def null_label(self):
        return self.net.null_label

    def forward(self, x, t, y=None):
        return self.net(x, t, y) if y is not None else self.net(x, t)

