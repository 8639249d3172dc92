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
any module.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import torch

from . import zoo
from .errors import DiffrepError
from .support import profile
from .zoo import recipes, store

REPOSITORY = "https://github.com/diffrep/diffrep"       # pyproject.toml's Repository URL (a test keeps them equal)
INSTALL_BOOK = 'pip install "diffrep_lib[book]"'
NOTEBOOKS = Path("notebooks")                            # the chapters, in a clone, relative to the current folder
EXECUTED = Path("_build") / "executed" / "notebooks"     # where `diffrep run` writes executed chapters by default
RECORD = Path("_build") / "executed" / "record.json"     # the execution record beside them (scripts/run_book.py's)


class UsageError(Exception):
    """The command was used wrongly (exit code 2)."""


class Failure(Exception):
    """The command could not do what was asked (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a training seed is an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a training seed is an integer >= 0, got {value}")
    return value


def _version() -> str:
    try:
        return f"diffrep_lib {metadata.version('diffrep_lib')}"
    except metadata.PackageNotFoundError:
        return "diffrep_lib (not installed)"


# --- diffrep zoo ------------------------------------------------------------------------------------------------

def _shipped_names() -> list[str]:
    """The shipped recipes: those with a `quick` preset (read now, so a recipe registered at run time counts)."""
    return sorted(name for name, presets in recipes.RECIPES.items() if "quick" in presets)


def _check_names(names, known, what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown {what} {', '.join(map(repr, unknown))}; the zoo has: {', '.join(known)}")


def _stale_reason(name: str, entry: dict | None) -> str:
    if entry is None:
        return "no manifest entry"
    if entry["recipe_hash"] != recipes.recipe_hash(recipes.get(name, "quick", 0)):
        return "recipe changed since it was trained"
    return f"weights file {store.shipped_path(name).name} missing"


def _trained(entry: dict) -> str:
    wall = entry.get("wall_s", 0)
    took = f"{wall / 60:.0f} min" if wall >= 90 else f"{wall:.0f} s"
    return f"{entry.get('steps', '?')} steps, {took} on {entry.get('device', '?')}, {entry.get('date', '?')}"


def zoo_list(args) -> int:
    names = _shipped_names()
    entries = zoo.read_manifest()["entries"]
    stale = set(zoo.stale(names))
    width = max(len(n) for n in names)
    counts: dict[str, int] = {}
    print(f"{'recipe':<{width}}  {'status':<28}  trained / what to do")
    print("-" * (width + 70))
    for name in names:
        entry = entries.get(name)
        if name in stale:
            status, note = "stale", f"{_stale_reason(name, entry)}: run `{zoo.retrain_command(name)}`"
        elif name in recipes.RECORD_ONLY:
            status, note = "record only", _trained(entry)
        else:
            problems = zoo.verify([name])
            status = "FAILS verification" if problems else "shipped and verified"
            note = "; ".join(problems) if problems else _trained(entry)
        counts[status] = counts.get(status, 0) + 1
        shown = f"{status} (extra)" if name in recipes.EXTRAS else status
        print(f"{name:<{width}}  {shown:<28}  {note}")
    extras = sum(name in recipes.EXTRAS for name in names)
    print(f"\n{len(names)} recipes: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; {extras} of them extras (in a clone: make zoo-extras)")
    return 0


def zoo_verify(args) -> int:
    _check_names(args.names, _shipped_names(), "shipped recipe")
    problems = zoo.verify(args.names or None)
    if problems:
        print("\n".join(problems))
        print(f"diffrep zoo verify: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    count = len(args.names) if args.names else len(zoo.recipes.SHIPPED)
    print(f"zoo: every shipped entry verified ({count} recipe{'s' * (count != 1)}: recipe hash, sha256, golden output)")
    return 0


def _report(name: str, rec: dict) -> None:
    host = rec.get("host", "").split(", ")[-1]
    print(f"zoo: {name} (seed {rec['seed']}): {rec['steps']} steps in {rec['wall_s']:.0f} s on {rec['device']}"
          f"{f' ({host})' if host else ''}; {rec['metrics']}", flush=True)


def zoo_train(args) -> int:
    _check_names([args.name], sorted(recipes.RECIPES), "zoo model")
    if args.profile not in recipes.RECIPES[args.name]:
        raise UsageError(f"zoo model {args.name!r} has no {args.profile!r} recipe; it has "
                         f"{', '.join(sorted(recipes.RECIPES[args.name]))}")
    if args.ship:
        if args.profile != "quick" or args.seed != 0:
            raise UsageError("--ship retrains the shipped weights, which are profile quick, seed 0 "
                             f"(got profile {args.profile}, seed {args.seed}); leave out --ship to train into the cache")
        r = recipes.get(args.name, "quick", 0)
        print(f"diffrep zoo train: training {args.name} (quick, seed 0, {r.steps} steps) on the CPU to ship it",
              file=sys.stderr, flush=True)
        rec = zoo.ship(args.name)
        _report(args.name, rec)
        if args.name in recipes.RECORD_ONLY:
            print(f"shipped: its training record (no weights: a record-only recipe) in {store.MANIFEST}")
        else:
            print(f"shipped: weights {store.shipped_path(args.name)}, manifest entry in {store.MANIFEST}")
        return 0
    r = recipes.get(args.name, args.profile, args.seed)
    # the shipped model (zoo.api's rule): quick, seed 0, unless DIFFREP_RETRAIN=1 asks to train it into the cache
    if args.profile == "quick" and args.seed == 0 and os.environ.get("DIFFREP_RETRAIN") != "1":
        rec = zoo.record(args.name, "quick", 0)         # the manifest entry; a stale one is an error naming the fix
        what = "its training record" if args.name in recipes.RECORD_ONLY else f"weights {store.shipped_path(args.name)}"
        _report(args.name, rec)
        print(f"{args.name} (quick, seed 0) ships with the package ({what}): nothing trained. "
              f"`diffrep zoo train {args.name} --ship` retrains the shipped weights; with DIFFREP_RETRAIN=1 it is "
              "trained into the cache instead")
        return 0
    path = zoo.cached_path(r, args.profile)
    found = path.exists()
    rec = zoo.record(args.name, args.profile, args.seed)
    _report(args.name, rec)
    print(f"{'found' if found else 'trained'} in the cache: {path} (record {path.with_suffix('.json').name} beside it)")
    return 0


# --- diffrep run --------------------------------------------------------------------------------------------------

def _papermill_available() -> bool:
    return find_spec("papermill") is not None


def _chapters(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def find_chapter(chapter: str, folder: Path = NOTEBOOKS) -> Path:
    """The notebook `chapter` names: a path to an .ipynb, or a chapter in `folder` by stem (`04_activations`) or by
    its number prefix (`04`, `4`, `A1`)."""
    if chapter.endswith(".ipynb") or os.sep in chapter:
        path = Path(chapter)
        if not path.is_file():
            raise UsageError(f"no notebook at {path}")
        return path
    if not folder.is_dir():
        raise Failure(f"no {folder}/ folder in {Path.cwd()}: `diffrep run` executes the chapters of a clone of the "
                      f"repository; run it there (git clone {REPOSITORY} && cd diffrep), or pass a path to an .ipynb")
    found = _chapters(folder)
    key = chapter.lower()
    key = key.zfill(2) if key.isdigit() else key
    hits = [p for p in found if p.stem.lower() == key] or \
           [p for p in found if p.stem.split("_")[0].lower() == key]
    if len(hits) == 1:
        return hits[0]
    available = ", ".join(p.stem for p in found) or "none"
    if hits:
        raise UsageError(f"chapter {chapter!r} is ambiguous: {', '.join(p.stem for p in hits)}")
    raise UsageError(f"unknown chapter {chapter!r}; the chapters in {folder}/: {available}")


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell `remove-cell`, so the book hides it (scripts/run_book.py's rule)."""
    nb = json.loads(path.read_text())
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = tags + ["remove-cell"]
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def update_record(row: dict, path: Path) -> None:
    """Put one chapter's row into the execution record at `path`, replacing that chapter's earlier row."""
    rows = []
    if path.exists():
        try:
            rows = json.loads(path.read_text())
        except ValueError:
            rows = []
        rows = rows if isinstance(rows, list) else []
    rows = [r for r in rows if r.get("chapter") != row["chapter"]] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


def _last_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and set(ln.strip()) - set("-=^ ")]
    return lines[-1] if lines else "no output"


def run_chapter(args) -> int:
    src = find_chapter(args.chapter)
    if not _papermill_available():
        raise Failure(f"papermill is not installed here (it executes the chapters): {INSTALL_BOOK}")

    resolved = profile.resolve(args.profile)
    device = profile.device_for(resolved)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / src.name
    record = out.parent / "record.json"
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as log:
        pass
    env = {**os.environ, "DIFFREP_PROGRESS": "0", "DIFFREP_CLAIMS_LOG": log.name}   # no bars in executed pages
    cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "-p", "profile", resolved, "-p", "seed",
           str(args.seed), "-k", "python3", "--cwd", str(src.parent), "--no-progress-bar"]
    print(f"diffrep run: executing {src.stem} (profile {resolved}, seed {args.seed}) into {dst}", file=sys.stderr,
          flush=True)
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.time() - t0
        claims = [json.loads(line) for line in Path(log.name).read_text().splitlines() if line.strip()]
    finally:
        Path(log.name).unlink(missing_ok=True)
    if dst.exists():
        hide_injected_parameters(dst)
    ok = proc.returncode == 0
    gpu = None
    if device == "cuda":
        gpu = torch.cuda.get_device_name(0)
    update_record({"chapter": src.stem, "profile": resolved, "seed": args.seed, "device": device, "gpu": gpu,
                   "wall_s": round(wall, 1), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                   "library": _version().split()[-1], "ok": ok, "claims": claims}, record)
    print(f"{src.stem}: {'ok' if ok else 'FAILED'} in {wall:.0f} s "
          f"({sum(c['holds'] for c in claims)}/{len(claims)} claims held)", flush=True)
    if not ok:
        where = f"; the executed notebook shows where: {dst}" if dst.exists() else ""
        raise Failure(f"{src.stem} failed: {_last_line(proc.stdout)}{where}")
    print(f"executed notebook: {dst}\nexecution record: {record} (`diffrep record` prints it)")
    return 0


# --- diffrep record -----------------------------------------------------------------------------------------------

def table(rows: list[dict]) -> str:
    """The execution record as a table (also scripts/run_book.py's): profile, device, wall time and claims per
    chapter."""
    lines = [f"{'chapter':<24} {'profile':<7} {'device':<7} {'wall':>7}  claims held",
             "-" * 60]
    for r in rows:
        held = sum(c["holds"] for c in r["claims"])
        checked = sum(c["checked"] for c in r["claims"])
        note = "" if checked == len(r["claims"]) else f" ({len(r['claims']) - checked} checked at full only)"
        note += "" if r.get("ok", True) else " FAILED"
        lines.append(f"{r['chapter']:<24} {r['profile']:<7} {r['device']:<7} {r['wall_s']:>6.0f}s  "
                     f"{held}/{len(r['claims'])}{note}")
    return "\n".join(lines)


def show_record(args) -> int:
    path = Path(args.file)
    if not path.exists():
        raise Failure(f"no execution record at {path}: run `diffrep run CHAPTER` first (or `make book` in a clone)")
    try:
        rows = json.loads(path.read_text())
        text = table(rows)
    except (ValueError, KeyError, TypeError) as err:
        raise Failure(f"the execution record {path} is unreadable ({type(err).__name__}: {err}); "
                      "run `diffrep run CHAPTER` to write a new one") from None
    print(text)
    return 0


# --- the command line ---------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    head, usage = __doc__.split("\n\n")[:2]
    p = _Parser(prog="diffrep", description=head.removesuffix("::") + ":\n\n" + usage, formatter_class=raw)
    p.add_argument("--version", action="version", version=_version())
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
    tr.add_argument("--seed", type=_seed, default=0, help="training seed (default 0)")
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
    run.add_argument("--seed", type=_seed, default=0, help="the chapter's seed (default 0)")
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


if __name__ == "__main__":
    sys.exit(main())
