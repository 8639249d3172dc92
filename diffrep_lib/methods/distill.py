"""Feature distillation from a diffusion U-Net into a small encoder (DreamTeacher, Li et al. 2023; survey §3.1.3,
Eq. 17), at a timestep of the recipe's choice (RepFusion's question, Yang & Wang 2023).

- the student: the book's SimCLR encoder architecture (`models.encoder.Encoder`), trained from scratch on
  unlabelled images; it sees the *clean* image;
- the targets: the teacher's decoder activations (`TEACHER_LAYERS`) read from x_t = q_sample(x, t) with fresh noise
  in every step (DreamTeacher's stochastic encoding), each normalised per image over channels and positions by a
  LayerNorm without parameters (the "LN" of Eq. 17: it keeps the loss from being dominated by the level with the
  largest activations);
- the regressors: one 1x1 convolution per level, from the student's map of the same resolution to the teacher's
  channels (light adapters, dropped after training: the zoo keeps the encoder alone);

    L_distill = (1/L) sum_l || r_l(f_l^student(x)) - LN(f_l^teacher(x_t, t)) ||^2      (mean over the map)

Recipe: `teacher` (a zoo U-Net), `teacher_init` ('random': the random-weight control), option 't' (the teacher's
timestep). Labels are never read.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..readout import features
from ..zoo import api, registry
from ..zoo.recipes import option
from .simclr import probe_embeddings

# student map (index into Encoder.body, after that block) -> teacher layer of the same resolution
LEVELS = {2: "up.1", 4: "up.0"}                  # 14 x 14 and 7 x 7: the U-Net's decoder
TEACHER_LAYERS = tuple(LEVELS.values())


def whiten(f: Tensor) -> Tensor:
    """Eq. 17's LN: each image's map normalised over channels and positions, no learned scale or shift."""
    return F.layer_norm(f, f.shape[1:])


def student_maps(encoder, x: Tensor) -> dict[int, Tensor]:
    """The student encoder's maps after the blocks of `LEVELS`, by block index."""
    out, h = {}, x
    for i, block in enumerate(encoder.body):
        h = block(h)
        if i in LEVELS:
            out[i] = h
    return out


def student_widths(encoder) -> dict[int, int]:
    """The channels after each block of `encoder.body`, by block index (a stem, then two blocks per width)."""
    w = encoder.cfg.widths
    return {0: w[0], **{1 + 2 * j + k: b for j, b in enumerate(w[1:]) for k in (0, 1)}}


def distill_loss(regressed: dict, targets: dict) -> Tensor:
    """Per-sample Eq. 17 (N,): the mean over levels of the mean squared difference between each regressed student map
    and the whitened teacher map of the same level (both dicts keyed by teacher layer)."""
    if set(regressed) != set(targets):
        raise KeyError(f"regressed levels {sorted(regressed)} differ from the teacher's {sorted(targets)}")
    per_level = [(regressed[k] - whiten(targets[k])).pow(2).flatten(1).mean(1) for k in targets]
    return torch.stack(per_level).mean(0)


class Distilling(nn.Module):
    """The student encoder with its regressors, reading a frozen teacher held outside the module tree (neither
    optimised nor saved). `export()` returns the encoder alone."""

    def __init__(self, encoder: nn.Module, regressors: nn.ModuleDict, teacher=None):
        super().__init__()
        self.encoder, self.regressors = encoder, regressors
        self._teacher = [teacher]

    @property
    def teacher(self):
        if self._teacher[0] is None:
            raise RuntimeError("this model was loaded without its teacher; only training needs it")
        return self._teacher[0]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """The regressed student maps of x, keyed by the teacher layer each one predicts."""
        maps = student_maps(self.encoder, x)
        return {LEVELS[i]: self.regressors[LEVELS[i].replace(".", "_")](m) for i, m in maps.items()}

    def export(self) -> nn.Module:
        return self.encoder


@torch.no_grad()
def teacher_targets(teacher, x: Tensor, t: int, generator=None) -> dict[str, Tensor]:
    """The teacher's decoder maps of x noised to step t with fresh noise (float32, no gradient)."""
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
    return {k: v.float() for k, v in features.extract(teacher, x, t, list(TEACHER_LAYERS), noise=noise).items()}


def distill_terms(net: Distilling, x: Tensor, y=None, *, recipe, generator=None, **_) -> dict[str, Tensor]:
    """Eq. 17 on a batch of clean images; the labels y are ignored."""
    targets = teacher_targets(net.teacher.to(x.device), x, int(option(recipe, "t", 10)), generator)
    return {"distill": distill_loss(net(x), targets)}


def with_regressors(r, net, *, for_training: bool):
    """Training holds a 1x1 regressor per level and the frozen teacher beside the encoder; the zoo stores the
    encoder alone. Fashion-MNIST's 28 x 28 images: the student's maps at blocks 2 and 4 are 14 x 14 and 7 x 7."""
    if not for_training:
        return net
    teacher = api.load(r.teacher, r.profile, init=r.teacher_init).eval().requires_grad_(False)
    with torch.no_grad():                      # the teacher's channels per level (the student's are its widths)
        t_maps = features.extract(teacher, torch.zeros(1, 1, 28, 28), 0, list(TEACHER_LAYERS))
    widths = {i: student_widths(net)[i] for i in LEVELS}
    regressors = nn.ModuleDict({LEVELS[i].replace(".", "_"): nn.Conv2d(widths[i], t_maps[LEVELS[i]].shape[1], 1)
                                for i in LEVELS})
    return Distilling(net, regressors, teacher)


registry.register(registry.METHODS, "distill", registry.Method(
    terms=distill_terms, wrap=with_regressors, evaluate=probe_embeddings))
