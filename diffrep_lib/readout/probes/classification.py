"""Classification probes on frozen feature vectors (survey §3.1.1; ch. 4): a linear probe, a k-nearest-neighbour
vote and a few-label probe, all on standardised features, with one fixed optimiser and budget (`ProbeConfig`) for
every cell of a grid, so that cells differ only by their features."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import InputError, bad, check_int
from ._checks import _class_ids, _positive, _vectors


def check_inputs(train_x, train_y, test_x, test_y,
                 names=("train_x", "train_y", "test_x", "test_y")) -> tuple[Tensor, Tensor]:
    """The checks every probe runs on (N, D) features and their class labels (`names` as the messages call them);
    returns the labels as int64. framework.probe_grid runs them on every cell before training any probe."""
    nx, ny, tx, ty = names
    train_x, test_x = _vectors(train_x, nx, rows=2), _vectors(test_x, tx)
    if test_x.shape[1] != train_x.shape[1]:
        raise bad(InputError, tx, test_x, f"pass test features of the training features' width, "
                  f"{train_x.shape[1]} (the same t, layers and pooling)",
                  f"{test_x.shape[1]} features per example against {train_x.shape[1]} in {nx}")
    if test_x.device != train_x.device:
        raise bad(InputError, tx, test_x, f"put train and test features on one device: .to({str(train_x.device)!r})",
                  f"on {test_x.device}, {nx} on {train_x.device}")
    train_y, test_y = _class_ids(train_y, ny, len(train_x), nx), _class_ids(test_y, ty, len(test_x), tx)
    classes = train_y.unique()
    if len(classes) < 2:
        raise bad(InputError, ny, train_y, "pass training examples of at least two classes (shuffle before "
                  "splitting)", f"every label is {int(classes[0])}: a probe cannot learn to tell classes apart")
    return train_y, test_y


def standardize(train: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """z-score every feature with the training set's mean and standard deviation."""
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp(min=1e-6)
    return tuple((x - mean) / std for x in (train, *others))


@dataclass(frozen=True)
class ProbeConfig:
    steps: int = 150           # full-batch Adam steps on the multinomial logistic loss (on Fashion-MNIST
    lr: float = 0.02           # features, within 0.5 points of 300 steps at lr 0.01, at half the cost)
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        check_int(self.steps, "ProbeConfig.steps", low=1, fix="pass a positive number of optimiser steps (150 by default)")
        _positive(self.lr, "ProbeConfig.lr", "pass a positive, finite learning rate (0.02 by default)")
        _positive(self.weight_decay, "ProbeConfig.weight_decay", "pass a finite weight decay >= 0", zero=True)
        check_int(self.seed, "ProbeConfig.seed", low=0, fix="pass a non-negative integer seed")


def check_config(cfg) -> None:
    """A ProbeConfig, or the InputError that says so."""
    if not isinstance(cfg, ProbeConfig):
        raise bad(InputError, "cfg", cfg, "pass a ProbeConfig, e.g. ProbeConfig(steps=300)")


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                 cfg: ProbeConfig = ProbeConfig()) -> float:
    """Test accuracy of a linear classifier trained on standardised frozen features (N, D), on their device.
    Labels are class ids 0..C-1 (any integer dtype); the training labels must hold at least two classes."""
    check_config(cfg)
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    return _linear_probe(train_x, train_y, test_x, test_y, cfg)


def _linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, cfg: ProbeConfig) -> float:
    return _linear_probe_scores(train_x, train_y, [(test_x, test_y)], cfg)[0]


def _linear_probe_scores(train_x: Tensor, train_y: Tensor, evals, cfg: ProbeConfig) -> list[float]:
    """One linear head trained on train_x, its accuracy on each (x, y) of `evals` (checked labels): the numbers a
    separate `_linear_probe` per set gives (standardisation and training see only the training set; the head has
    a logit for every class id up to the largest in any set), at the cost of one fit."""
    train_x, *xs = standardize(train_x.float(), *(x.float() for x, _ in evals))
    train_y, ys = train_y.to(train_x.device), [y.to(train_x.device) for _, y in evals]
    head = _train_head(train_x, train_y, int(max(train_y.max(), *(y.max() for y in ys))) + 1, cfg)
    with torch.no_grad():
        return [(head(x).argmax(1) == y).float().mean().item() for x, y in zip(xs, ys)]


def _train_head(train_x: Tensor, train_y: Tensor, classes: int, cfg: ProbeConfig) -> nn.Linear:
    """The probe's head on (standardised) features: small seeded initial weights, full-batch Adam for cfg.steps."""
    g = torch.Generator().manual_seed(cfg.seed)
    head = nn.Linear(train_x.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=g))
        head.bias.zero_()
    head = head.to(train_x.device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    with torch.enable_grad():                        # also when called under no_grad (an evaluation)
        for _ in range(cfg.steps):
            loss = F.cross_entropy(head(train_x), train_y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head


def fit_linear_head(train_x: Tensor, train_y: Tensor, classes: int | None = None,
                    cfg: ProbeConfig = ProbeConfig()) -> nn.Linear:
    """The linear probe's classifier as a module on the *raw* features (N, D): trained as `linear_probe` trains it,
    on standardised features, with the standardisation folded into its weights, so head(x) = W (x - mean) / std + b.
    The start of a linear-probe-then-fine-tune (LP-FT: the head is fitted before the encoder is unfrozen).
    classes: logits of the head (default: the largest label + 1)."""
    check_config(cfg)
    train_x, train_y = _vectors(train_x, "train_x", rows=2), _class_ids(train_y, "train_y", len(train_x), "train_x")
    x = train_x.float()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    head = _train_head((x - mean) / std, train_y.to(x.device), classes or int(train_y.max()) + 1, cfg)
    with torch.no_grad():
        head.weight.div_(std)
        head.bias.sub_(head.weight @ mean)
    return head


def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 20) -> float:
    """Test accuracy of a k-nearest-neighbour vote by cosine similarity of standardised features;
    1 <= k <= the number of training examples."""
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    k = _check_k(k, len(train_x))
    return _knn_accuracy(train_x, train_y, test_x, test_y, k)


def _check_k(k, n: int, name: str = "k") -> int:
    return check_int(k, name, low=1, high=n, fix=f"pass an integer k with 1 <= k <= {n}, the number of training examples")


@torch.no_grad()
def _knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int) -> float:
    train_x, test_x = (F.normalize(z, dim=1) for z in standardize(train_x.float(), test_x.float()))
    neighbours = (test_x @ train_x.T).topk(k, dim=1).indices
    votes = F.one_hot(train_y[neighbours], int(train_y.max()) + 1).sum(1)
    return (votes.argmax(1) == test_y).float().mean().item()


def few_label_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, per_class: int = 10,
                    draws: int = 5, cfg: ProbeConfig = ProbeConfig()) -> tuple[float, float]:
    """Linear probe from `per_class` labels per class, over `draws` fixed random draws: (mean, std).
    Every class of train_y must have at least `per_class` examples."""
    check_config(cfg)
    train_y, test_y = check_inputs(train_x, train_y, test_x, test_y)
    per_class = check_int(per_class, "per_class", low=1, fix="pass a positive number of labelled examples per class")
    draws = check_int(draws, "draws", low=1, fix="pass a positive number of random draws (5 by default)")
    classes, counts = train_y.unique(return_counts=True)
    if per_class > int(counts.min()):
        c = int(classes[counts.argmin()])
        raise bad(InputError, "per_class", per_class, f"pass per_class <= {int(counts.min())}, or more training "
                  f"examples of class {c}", f"class {c} has only {int(counts.min())} training examples: every draw "
                  "would take all of them")
    accs = []
    for d in range(draws):
        g = torch.Generator().manual_seed(1000 + d)
        picks = []
        for c in train_y.unique():
            members = torch.nonzero(train_y == c).flatten()
            picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
        idx = torch.cat(picks)
        accs.append(_linear_probe(train_x[idx], train_y[idx], test_x, test_y, cfg))
    acc = torch.tensor(accs)
    return acc.mean().item(), acc.std().item() if draws > 1 else 0.0
