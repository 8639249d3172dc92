"""Data of the book, as `datasets.Dataset` (DESIGN.md §4): Fashion-MNIST, toy 2-D mixtures and toy scenes."""
from . import fashion_mnist, toy2d, toy_scenes
from .fashion_mnist import CLASSES, DataNotFound


def training_tensors(name: str):
    """(x, y) training tensors of a data set named in a zoo recipe; y is None for unlabelled data."""
    if name == "fashion_mnist":
        return fashion_mnist.tensors("train")
    if name == "toy_scenes":
        return toy_scenes.split("train").images, None
    raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)} or 'toy2d/<name>' "
                     f"with <name> in {sorted(toy2d.TOYS)}")


DATASETS = {"fashion_mnist": fashion_mnist.load, "toy2d": toy2d.load, "toy_scenes": toy_scenes.load}
