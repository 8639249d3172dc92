"""Check the executed chapters with nbval: each notebook is executed again, and its claim cells (marked
`# NBVAL_CHECK_OUTPUT`) must print what they printed when scripts/run_book.py executed it.

    python scripts/nbval_book.py [--jobs N] [NOTEBOOK ...]     # default: every notebook of _build/executed

A notebook is re-executed with the thread count it was executed with (run_book.py writes it into the
notebook's metadata): a computation that is not memoised repeats its arithmetic exactly only then. As many
notebooks run at once as the cores allow at that count (two at a time with one thread each on a 2-core
CPU). Ends with one line per notebook and, for a failing one, pytest's report.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import run_book  # noqa: E402  (scripts/, the folder of this script)

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "executed" / "notebooks"


def threads_of(path: Path, cores: int) -> int:
    """The thread count `path` was executed with (all cores for a notebook executed otherwise)."""
    meta = json.loads(path.read_text()).get("metadata", {})
    return int(meta.get("diffrep", {}).get("threads", cores))


def check(path: Path, threads: int) -> tuple[bool, str, float]:
    env = {**run_book.thread_env(threads), "DIFFREP_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           str(path)]
    t0 = time.time()
    out = io.StringIO()
    code = run_book.run_process(cmd, env, out, cwd=ROOT, name=path.stem)   # spaced; a dead kernel retried
    return code == 0, out.getvalue(), time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--jobs", type=int, help="notebooks at once (default: the cores over the thread count)")
    args = ap.parse_args()
    paths = args.notebooks or sorted(EXECUTED.glob("*.ipynb"))
    if not paths:
        print(f"nbval_book: no executed notebooks in {EXECUTED}: run scripts/run_book.py first", file=sys.stderr)
        return 1
    cores = os.cpu_count() or 1
    threads = {p: threads_of(p, cores) for p in paths}
    jobs = args.jobs or max(1, cores // max(threads.values()))
    print(f"nbval: {len(paths)} notebooks, {jobs} at a time", flush=True)
    t0, failed, cells = time.time(), [], 0
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(check, p, threads[p]): p for p in paths}
        for fut in as_completed(futures):
            path = futures[fut]
            ok, output, wall = fut.result()
            summary = (re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", output, re.M) or ["no summary"])[-1]
            cells += sum(int(n) for n in re.findall(r"(\d+) passed", summary))
            print(f"{path.stem}: {summary.strip()} ({wall:.0f} s, {threads[path]} thread"
                  f"{'s' * (threads[path] > 1)})", flush=True)
            if not ok:
                failed.append(path.stem)
                print(output[-6000:], file=sys.stderr, flush=True)
    print(f"nbval: {cells} cells passed in {len(paths) - len(failed)} of {len(paths)} notebooks, "
          f"{time.time() - t0:.0f} s")
    if failed:
        print(f"nbval: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
