"""`make zoo`: train every missing or stale `quick` recipe on the CPU and ship its weights.

    python scripts/zoo.py            # only what is missing or whose recipe changed
    python scripts/zoo.py --force unet_fmnist
    python scripts/zoo.py --jobs 1   # one recipe at a time, with all cores
    python scripts/zoo.py --verify   # check the manifest (recipe hashes, sha256, golden outputs)
    python scripts/zoo.py --seed 1 --seed 2 dit_fmnist   # other training seeds, into the cache only
    python scripts/zoo.py --seed 0 --seed 1 dit_fmnist   # both: seed 0 only if stale (or --force)
    python scripts/zoo.py --extras   # the extras (make zoo-extras): chapter 9's k = 50, 200, chapter 12's sweep

Recipes train in waves: a recipe whose teacher is also to be trained waits for the wave after it. Within a wave
`--jobs` workers (default 2) train recipes side by side, the cores split between them: the book's small models
use two cores poorly, and two single-threaded trainings on this 2-core CPU do 1.2-1.3x the work of one with two
threads (make bench). A worker's arithmetic can differ from a two-thread run's in the last bits (another
reduction order), and training amplifies such differences: weights are reproducible per machine and thread
count, not across them. A worker left alone at the end of a wave keeps its single thread.
"""
import argparse
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from diffrep_lib import recipes, zoo


def waves(todo: list[str]) -> list[list[str]]:
    """`todo` in dependency order: each recipe after the wave that trains its teacher, longest recipes first."""
    out, left = [], list(todo)
    while left:
        wave = [n for n in left if recipes.get(n, "quick").teacher not in left]
        if not wave:
            raise RuntimeError(f"zoo: circular teachers among {left}")
        out.append(sorted(wave, key=lambda n: -recipes.get(n, "quick").steps))
        left = [n for n in left if n not in wave]
    return out


def _worker_init(threads: int, jobs: int) -> None:
    import torch
    torch.set_num_threads(threads)
    os.environ["DIFFREP_BAR_POSITION"] = str((mp.current_process()._identity[0] - 1) % jobs)   # its own bar line


def _ship(name: str, seed: int = 0, force: bool = False) -> tuple[str, dict]:
    return name, (zoo.ship(name, retrain=force) if seed == 0 else zoo.record(name, "quick", seed))


def report(name: str, rec: dict) -> None:
    print(f"zoo: {name} (seed {rec['seed']}): {rec['steps']} steps in {rec['wall_s']:.0f} s on {rec['device']} "
          f"({rec['host'].split(', ')[-1]}); {rec['metrics']}", flush=True)


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="recipes to train (default: all stale ones)")
    ap.add_argument("--force", action="store_true",
                    help="retrain even if up to date (from scratch: an earlier run's weights are not reused)")
    ap.add_argument("--verify", action="store_true", help="only verify the shipped weights")
    ap.add_argument("--jobs", type=int, default=2, help="recipes trained side by side (default 2)")
    ap.add_argument("--extras", action="store_true",
                    help=f"the extras instead of the core recipes: {', '.join(sorted(recipes.EXTRAS))}")
    ap.add_argument("--seed", type=int, action="append",
                    help="a training seed (repeatable; default 0); other seeds go to the cache, not the package")
    args = ap.parse_args(argv)
    args.seed = args.seed or [0]
    if args.seed != [0] and not args.names:
        ap.error("--seed other than 0 needs the recipe names")
    return args


def selected(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The (recipe, seed) runs to do: the recipes named, else the core ones (the extras with --extras). Seed 0 is
    shipped: only a missing or stale recipe is retrained, unless --force. Other seeds go to the cache, where
    `zoo.record` trains only what is not there yet."""
    names = args.names or sorted(recipes.EXTRAS if args.extras else recipes.CORE)
    to_ship = set(names if args.force else zoo.stale(names)) if 0 in args.seed else set()
    return [(name, seed) for name in names for seed in args.seed if seed != 0 or name in to_ship]


def main() -> int:
    args = parse()
    if args.verify:
        problems = zoo.verify(args.names or None)
        print("\n".join(problems) or "zoo: every shipped entry verified")
        return 1 if problems else 0
    todo = selected(args)
    if not todo:
        which = "named" if args.names else "extra" if args.extras else "core"
        print(f"zoo: every {which} recipe is up to date")
    cores = os.cpu_count() or 1
    for wave in waves(list(dict.fromkeys(name for name, _ in todo))):
        jobs_list = [(name, seed) for name in wave for seed in args.seed if (name, seed) in todo]
        jobs = max(1, min(args.jobs, len(jobs_list), cores))
        if jobs == 1:
            for name, seed in jobs_list:
                report(*_ship(name, seed, args.force))
            continue
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(cores // jobs, jobs)) as pool:
            for done in as_completed([pool.submit(_ship, name, seed, args.force) for name, seed in jobs_list]):
                report(*done.result())
    return 0


if __name__ == "__main__":
    sys.exit(main())
