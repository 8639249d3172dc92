"""`diffrep zoo list | verify | train`: the shipped weights' status, their verification, and training a recipe into
the cache or into the package (what `make zoo` does in a clone)."""
from __future__ import annotations

import os
import sys

from .. import zoo
from ..zoo import recipes, store
from .common import UsageError


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
