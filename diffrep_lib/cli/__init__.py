"""The `diffrep` command: what the Makefile does, for pip and Colab users (installed with the package)::

    diffrep zoo list                          every shipped recipe with its status, one line each
    diffrep zoo verify [NAME ...]             check the shipped weights: recipe hash, sha256, golden output
    diffrep zoo train NAME [--profile quick|full] [--seed S] [--ship]
                                              train a recipe into the cache; --ship retrains the shipped weights
    diffrep run CHAPTER [--profile P] [--seed S] [--out DIR]
                                              execute one chapter with papermill (in a clone of the repository)
    diffrep record                            the last execution record as a table

`diffrep COMMAND --help` says more; `python -m diffrep_lib.cli` is the same command. Errors are one line on stderr,
with exit code 2 for a command used wrongly and 1 for one that failed. The top layer of the library: it may import
any module. One module per family of commands: `zoo_commands` (diffrep zoo), `chapters` (diffrep run and diffrep
record) and `common` (their errors and arguments); this one holds the grammar and `main`.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import DiffrepError
from .chapters import (EXECUTED, INSTALL_BOOK, NOTEBOOKS, RECORD, find_chapter, papermill_available, run_chapter,
                       show_record, table)
from .common import REPOSITORY, Failure, Parser, UsageError, training_seed, version
from .zoo_commands import zoo_list, zoo_train, zoo_verify

__all__ = ["main", "parser", "find_chapter", "papermill_available", "table", "EXECUTED", "INSTALL_BOOK", "NOTEBOOKS",
           "RECORD", "REPOSITORY", "UsageError", "Failure"]


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    head, usage = __doc__.split("\n\n")[:2]
    p = Parser(prog="diffrep", description=head.removesuffix("::") + ":\n\n" + usage, formatter_class=raw)
    p.add_argument("--version", action="version", version=version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    zoo_cmd = sub.add_parser("zoo", help="the model zoo: list, verify and train its recipes",
                         description="The model zoo: the shipped quick weights (profile quick, seed 0) and the "
                                     "models trained into the cache (DIFFREP_CACHE, default ~/.cache/diffrep).")
    zsub = zoo_cmd.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    ls = zsub.add_parser("list", help="every shipped recipe with its status",
                         description="Every shipped recipe, one line each, with its status: shipped and verified "
                                     "(recipe hash, sha256 and golden output checked), stale (missing or trained "
                                     "from another recipe), record only (only its training record ships), "
                                     "and (extra) for the extras (in a clone: make zoo-extras).")
    ls.set_defaults(func=zoo_list)
    ver = zsub.add_parser("verify", help="check the shipped weights; exit 1 on a problem",
                          description="Check the shipped entries: recipe hash, sha256 of the weights and today's "
                                      "code reproducing their golden output. Prints the problems; exit code 1 if any.")
    ver.add_argument("names", nargs="*", metavar="NAME", help="recipes to check (default: every shipped one)")
    ver.set_defaults(func=zoo_verify)
    tr = zsub.add_parser("train", help="train a recipe into the cache, or --ship the quick weights",
                         description="Train the zoo model NAME into the cache (skipped when it is there already) "
                                     "and print its record and where the files went. The shipped model (profile "
                                     "quick, seed 0) is not trained again unless --ship: that retrains it on the "
                                     "CPU and writes the package's weights and manifest entry (what `make zoo` does "
                                     "in a clone).")
    tr.add_argument("name", metavar="NAME", help="a zoo model, e.g. unet_fmnist (`diffrep zoo list`)")
    tr.add_argument("--profile", choices=("quick", "full"), default="quick", help="the recipe's profile (default quick)")
    tr.add_argument("--seed", type=training_seed, default=0, help="training seed (default 0)")
    tr.add_argument("--ship", action="store_true",
                    help="retrain the shipped weights (profile quick, seed 0) into the package")
    tr.set_defaults(func=zoo_train)

    run = sub.add_parser("run", help="execute one chapter notebook with papermill",
                         description="Execute one chapter with papermill, with the parameters profile and seed, "
                                     f"into DIR; its row of the execution record goes to DIR/../record.json (by "
                                     f"default {RECORD}: `diffrep record` prints it). Chapters are looked up in "
                                     f"./{NOTEBOOKS} (a clone of {REPOSITORY}); needs papermill: {INSTALL_BOOK}.",
                         formatter_class=raw)
    run.add_argument("chapter", metavar="CHAPTER",
                     help="a number prefix (04), a stem (04_activations) or a path to an .ipynb")
    run.add_argument("--profile", choices=("auto", "quick", "full"), default="auto",
                     help="auto (default): full on a GPU, quick on the CPU")
    run.add_argument("--seed", type=training_seed, default=0, help="the chapter's seed (default 0)")
    run.add_argument("--out", metavar="DIR", default=str(EXECUTED),
                     help=f"where the executed notebook goes (default {EXECUTED})")
    run.set_defaults(func=run_chapter)

    rec = sub.add_parser("record", help="print the last execution record as a table",
                         description="Print the last execution record (profile, device, wall time and claims held "
                                     "per chapter), as written by `diffrep run` and `make book`.")
    rec.add_argument("--file", default=str(RECORD), help=f"the record to print (default {RECORD})")
    rec.set_defaults(func=show_record)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit code."""
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as stop:                       # --help, --version, or a usage error (already printed)
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    prog = f"diffrep {args.command}" + (f" {args.zoo_command}" if args.command == "zoo" else "")
    try:
        return args.func(args)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (Failure, DiffrepError, OSError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
