"""Data of the book, as `datasets.Dataset` (docs/ARCHITECTURE.md, "Data"): Fashion-MNIST, toy 2-D mixtures and toy
scenes. A data set's name, as a zoo recipe writes it ('fashion_mnist', 'toy_scenes', 'toy2d/<name>'), is
interpreted here and nowhere else."""
import torch

from . import fashion_mnist, toy2d, toy_scenes
from .fashion_mnist import CLASSES, DataNotFound


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)} or 'toy2d/<name>' "
                      f"with <name> in {sorted(toy2d.TOYS)}")


def training_tensors(name: str):
    """(x, y) training tensors of a data set named in a zoo recipe; y is None for unlabelled data."""
    if name == "fashion_mnist":
        return fashion_mnist.tensors("train")
    if name == "toy_scenes":
        return toy_scenes.split("train").images, None
    raise _unknown(name)


def training_set(name: str):
    """What a recipe trains on: (x, y, draw). Stored data gives (x, y, None); a 2-D toy, drawn afresh in every
    step, gives (None, None, draw) with draw(n, generator) -> (n, 2) points."""
    if name.startswith("toy2d/"):
        toy = name.split("/", 1)[1]
        if toy not in toy2d.TOYS:
            raise _unknown(name)
        return None, None, (lambda n, g: toy2d.sample(toy, n, generator=g))
    x, y = training_tensors(name)
    return x, y, None


def held_out(name: str):
    """The fixed held-out set on which the zoo scores a recipe's model, (x, y) with y None for unlabelled data:
    4,096 seeded points of a 2-D toy, the first 1,000 test scenes, or the first 2,000 Fashion-MNIST test images."""
    if name.startswith("toy2d/"):
        return toy2d.sample(name.split("/", 1)[1], 4096, generator=torch.Generator().manual_seed(99)), None
    if name == "toy_scenes":
        return toy_scenes.split("test").images[:1000], None
    if name == "fashion_mnist":
        x, y = fashion_mnist.tensors("test")
        return x[:2000], y[:2000]
    raise _unknown(name)


DATASETS = {"fashion_mnist": fashion_mnist.load, "toy2d": toy2d.load, "toy_scenes": toy_scenes.load}
