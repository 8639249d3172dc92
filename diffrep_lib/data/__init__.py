"""Data of the book, as `datasets.Dataset` (docs/ARCHITECTURE.md, "Data"): Fashion-MNIST, toy 2-D mixtures and toy
scenes. A data set's name, as a zoo recipe writes it ('fashion_mnist', 'toy_scenes', 'toy2d/<name>'), is
interpreted here and nowhere else."""
import torch

from ..errors import InputError, bad
from . import fashion_mnist, toy2d, toy_scenes
from .fashion_mnist import CLASSES, DataNotFound

_STORED = ("fashion_mnist", "toy_scenes")       # data sets held as tensors; 2-D toys are drawn afresh


def _names() -> list[str]:
    return [*_STORED, *(f"toy2d/{toy}" for toy in sorted(toy2d.TOYS))]


def _check(name, *, stored_only: bool = False) -> None:
    """The InputError for a data-set name no recipe can use (or, with stored_only, a 2-D toy, which has no tensors)."""
    if not isinstance(name, str) or name not in _names():
        raise bad(InputError, "name", name, f"choose one of {_names()}", why="unknown data set")
    if stored_only and name not in _STORED:
        raise bad(InputError, "name", name, f"call training_set({name!r}) for its draw(n, generator) function, or "
                  f"toy2d.sample({name.split('/', 1)[1]!r}, n); stored data sets are {list(_STORED)}",
                  why="a 2-D toy has no stored training tensors: it is drawn afresh in every step")


def training_tensors(name: str):
    """(x, y) training tensors of a data set named in a zoo recipe; y is None for unlabelled data."""
    _check(name, stored_only=True)
    if name == "fashion_mnist":
        return fashion_mnist.tensors("train")
    return toy_scenes.split("train").images, None


def training_set(name: str):
    """What a recipe trains on: (x, y, draw). Stored data gives (x, y, None); a 2-D toy, drawn afresh in every
    step, gives (None, None, draw) with draw(n, generator) -> (n, 2) points."""
    _check(name)
    if name.startswith("toy2d/"):
        toy = name.split("/", 1)[1]
        return None, None, (lambda n, g: toy2d.sample(toy, n, generator=g))
    x, y = training_tensors(name)
    return x, y, None


def value_range(name: str) -> tuple[float, float] | None:
    """The range of a data set's values: (-1, 1) for images (samplers clip their x0 estimates to it), None for the
    2-D toys, whose points are unbounded."""
    _check(name)
    return None if name.startswith("toy2d/") else (-1.0, 1.0)


def held_out(name: str):
    """The fixed held-out set on which the zoo scores a recipe's model, (x, y) with y None for unlabelled data:
    4,096 seeded points of a 2-D toy, the first 1,000 test scenes, or the first 2,000 Fashion-MNIST test images."""
    _check(name)
    if name.startswith("toy2d/"):
        return toy2d.sample(name.split("/", 1)[1], 4096, generator=torch.Generator().manual_seed(99)), None
    if name == "toy_scenes":
        return toy_scenes.split("test").images[:1000], None
    x, y = fashion_mnist.tensors("test")
    return x[:2000], y[:2000]


DATASETS = {"fashion_mnist": fashion_mnist.load, "toy2d": toy2d.load, "toy_scenes": toy_scenes.load}
