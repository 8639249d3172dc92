"""What every `diffrep` command shares: its two kinds of error (each one line on stderr, exit code 2 or 1), the
parser that prints usage errors on one line, the seed argument and the version string."""
from __future__ import annotations

import argparse
from importlib import metadata

REPOSITORY = "https://github.com/diffrep/diffrep"       # pyproject.toml's Repository URL (a test keeps them equal)


class UsageError(Exception):
    """The command was used wrongly (exit code 2)."""


class Failure(Exception):
    """The command could not do what was asked (exit code 1)."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def training_seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a training seed is an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a training seed is an integer >= 0, got {value}")
    return value


def version() -> str:
    try:
        return f"diffrep_lib {metadata.version('diffrep_lib')}"
    except metadata.PackageNotFoundError:
        return "diffrep_lib (not installed)"
