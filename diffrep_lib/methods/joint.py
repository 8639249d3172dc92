"""Joint diffusion models (survey §3.1.5; ch. 7): one U-Net trained as a denoiser on every image and, through a
head on its encoder, as a classifier on the few images that carry a label (JDM, Deja et al. 2023):

    L = L_simple(x) + alpha * CE(head(encoder(x_l, t = 0)), y_l)

x from all training images, (x_l, y_l) from a labelled subset: the semi-supervised setting in which JDM reports
its gains. JDM's alpha is 0.001; the book varies it. The head reads clean images at t = 0, as JDM's default does
(`train_noised_classifier False` in the released code). Both batches have the recipe's batch size; the labelled
images are shifted and mirrored (`synthetic.shift_flip`), the same for every arm, which slows the memorisation of
a few hundred labels but does not prevent it (by the end of 1,000 steps the heads fit them almost perfectly).

A recipe with a teacher starts from the teacher's U-Net (the head starts at random) and continues its training:
JDM trains from scratch, which at the book's CPU budget would cost each arm the 4,000 steps of the U-Net itself.

Recipe options: 'alpha' (the weight of the cross-entropy, default 0.001), 'labels' (labelled images, balanced
over the classes, default 600 = 1% of the training set), 'denoise' (False: no denoising loss, a classifier
trained on the labelled subset only), 'detach' (True: the head learns on the encoder's features with no gradient
into the encoder: the diffusion model alone, with its probe trained alongside).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import data
from ..core import losses
from ..errors import InputError, bad
from ..zoo import api, registry
from ..zoo.recipes import option
from . import denoising, synthetic


def labelled_subset(n_labels: int, seed: int) -> Tensor:
    """Indices of n_labels training images, n_labels / 10 per class: the first of each class in the seed's order."""
    if n_labels % 10 or n_labels <= 0:
        raise bad(InputError, "labels", n_labels, "pass a positive multiple of 10 (a balanced labelled subset)")
    _, y = data.fashion_mnist.tensors("train")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    per_class = [order[y[order] == c][:n_labels // 10] for c in range(10)]
    return torch.stack(per_class, dim=1).flatten()          # class 0, 1, ..., 9, 0, 1, ...


def joint_data(r) -> tuple[Tensor, Tensor]:
    """(x, y): every training image in channel 0 (the denoiser's data), and in channel 1 a labelled image from the
    subset (the subset repeated and shuffled to the same length, seeded), y its label."""
    x, y = data.training_tensors(r.data)
    idx = labelled_subset(option(r, "labels", 600), r.seed)
    g = torch.Generator().manual_seed(r.seed + 1)
    pick = idx[torch.randint(len(idx), (len(x),), generator=g)]
    return torch.cat([x, x[pick]], dim=1), y[pick]


def joint_terms(net, x: Tensor, y: Tensor, *, recipe, abar, null=None, generator=None) -> dict[str, Tensor]:
    """Per-sample terms: 'denoise' (L_simple on channel 0, unconditional) unless the recipe turns it off, and 'ce'
    (the head's cross-entropy on the shifted and mirrored labelled image of channel 1, at t = 0)."""
    image, labelled = x[:, :1], x[:, 1:]
    out = {}
    if option(recipe, "denoise", True):
        out["denoise"] = losses.denoising_terms(net, image, None, abar=abar, prediction=recipe.prediction,
                                                generator=generator)["denoise"]
    seen = synthetic.shift_flip(labelled.cpu(), generator).to(x.device)
    pooled = net.pooled(seen)
    logits = net.head(pooled.detach() if option(recipe, "detach", False) else pooled)
    out["ce"] = F.cross_entropy(logits.float(), y, reduction="none")
    return out


def joint_weights(r) -> dict:
    """The cross-entropy weighs alpha; the denoising loss 1."""
    return {"ce": option(r, "alpha", 1e-3)}


def from_teacher(r, net, *, for_training: bool):
    """A recipe with a teacher continues the teacher U-Net's training; the head starts at random. The teacher is its
    shipped training seed (0) whatever the recipe's seed: it stands for a model trained elsewhere, and a second
    seed of an arm draws a new labelled subset, head, data order and noise from the same start. The stored module
    is the joint network."""
    if for_training and r.teacher:
        missing = net.load_state_dict(api.get(r.teacher, r.profile).state_dict(), strict=False)
        if missing.unexpected_keys or any(not k.startswith("head.") for k in missing.missing_keys):
            raise ValueError(f"teacher {r.teacher!r} is not the U-Net of {r.name!r}: {missing}")
    return net


@torch.no_grad()
def test_accuracy(model, n: int = 10000) -> dict:
    """The head's accuracy on the first n test images (t = 0), with its mean log-likelihood of the true class."""
    x, y = data.fashion_mnist.tensors("test")
    logits = torch.cat([model.classify(x[i:i + 500]) for i in range(0, n, 500)]).float()
    return {"test_accuracy": round((logits.argmax(1) == y[:n]).float().mean().item(), 4),
            "test_nll": round(F.cross_entropy(logits, y[:n]).item(), 4)}


def evaluate(model, r) -> dict:
    """The head's test accuracy, and the held-out denoising loss when the network was trained to denoise."""
    out = test_accuracy(model.eval())
    if option(r, "denoise", True):
        out |= denoising.held_out_loss(model, r)
    return out


registry.register(registry.METHODS, "joint",
                  registry.Method(terms=joint_terms, weights=joint_weights, evaluate=evaluate, data=joint_data,
                                  wrap=from_teacher))
