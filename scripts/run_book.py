"""Execute the book's chapters with papermill and keep a record of each run.

    python scripts/run_book.py --profile quick [--seed 0] [--chapters 01_foundations] [--jobs N]
    python scripts/run_book.py --summary          # print the last record as a table

Executed copies go to _build/executed/notebooks/, with the injected-parameters cell tagged so the book
hides it; _build/executed/record.json holds per chapter: profile, device, wall time, threads, date, library
version and every claim with its verdict (read from DIFFREP_CLAIMS_LOG, which `dr.claims.check` writes).

On a CPU, two chapters run at once, each with half the cores (`--jobs`; one at a time on a GPU, which the
chapters would share): the book's small networks keep two threads only partly busy, and two single-threaded
chapters on a 2-core machine finish in about 0.8 of the time they take one after the other with two threads
each (docs/ARCHITECTURE.md, "Executing the book"). Arithmetic depends on the thread count in its last bits, so
the count is written into the executed notebook, where scripts/nbval_book.py reads it back. Each chapter's
papermill output goes to _build/executed/logs/; a chapter that fails does not stop the others, and the run
ends with the failures and the end of their logs. Chapters start longest first (their wall times from the last
record, or from book/records/quick-walls.json on a fresh clone; `--save-walls` refreshes that file), so that the
run does not end with one long chapter on one core while the other idles.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from diffrep_lib.cli import table      # the record as a table, as `diffrep record` prints it
from diffrep_lib.cli.chapters import papermill_command

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "executed"
RECORD = OUT / "record.json"
WALLS = ROOT / "book" / "records" / "quick-walls.json"   # each chapter's wall time in the last full quick run


def chapters(names=None) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if names:
        unknown = sorted(set(names) - {p.stem for p in found})
        if unknown:
            raise SystemExit(f"unknown chapters {unknown}; the chapters: {[p.stem for p in found]}")
        found = [p for p in found if p.stem in names]
    return found


def walls_for(profile: str, out: Path = OUT, shipped: Path = WALLS) -> dict[str, float]:
    """Each chapter's wall time at this profile, as far as known: the committed `shipped` file's (`--save-walls`
    writes it from a full quick run), updated by the chapters of the last run's record in `out` (which may hold
    only some chapters); {} when neither is at this profile. Only the order of execution depends on them."""
    walls = {}
    if shipped.exists():
        saved = json.loads(shipped.read_text())
        if saved.get("profile") == profile:
            walls.update(saved["walls"])
    record = out / "record.json"
    if record.exists():
        try:
            rows = json.loads(record.read_text())
            walls.update({r["chapter"]: r["wall_s"] for r in rows if r.get("profile") == profile})
        except (ValueError, KeyError, TypeError):
            pass                                       # an unreadable record: the shipped times alone
    return walls


def longest_first(found: list[Path], walls: dict[str, float]) -> list[Path]:
    """The chapters in the order they start: longest first, so that the last to finish is a short one and no core
    waits alone at the end; a chapter without a known time goes first (a new chapter may be long). Ties keep the
    book's order."""
    return sorted(found, key=lambda p: -walls.get(p.stem, float("inf")))


def save_walls(record: Path = RECORD, shipped: Path = WALLS) -> dict:
    """Write `shipped` from a record of every chapter at quick, all of which ran; refuse anything else."""
    rows = json.loads(record.read_text())
    every = {p.stem for p in chapters()}
    if {r["chapter"] for r in rows} != every or any(r["profile"] != "quick" or not r["ok"] for r in rows):
        raise SystemExit(f"{record} is not a successful run of every chapter at quick: run "
                         "`python scripts/run_book.py --profile quick` first")
    saved = {"profile": "quick", "date": max(r["date"] for r in rows)[:10],
             "jobs": rows[0]["jobs"], "threads": rows[0]["threads"],
             "walls": {r["chapter"]: r["wall_s"] for r in rows}}
    shipped.write_text(json.dumps(saved, indent=1) + "\n")
    return saved


def plan(n_chapters: int, device: str, jobs: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """(chapters at once, threads each): two at a time on a CPU with two cores or more, one on a GPU."""
    cores = cores or os.cpu_count() or 1
    if jobs is None:
        jobs = 1 if device == "cuda" else 2
    jobs = max(1, min(jobs, n_chapters, cores))
    return jobs, max(1, cores // jobs)


def finish(path: Path, threads: int) -> None:
    """Hide papermill's injected-parameters cell in the book and note the thread count the chapter ran with."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    nb.metadata["diffrep"] = {**nb.metadata.get("diffrep", {}), "threads": threads}
    nbformat.write(nb, path)


# Two kernels started in the same instant can be handed the same port by jupyter_client, and one of them dies
# before its first cell. Launches are therefore spaced by a few seconds, and a run whose kernel died while
# starting (nothing of the notebook executed) is started once more.
KERNEL_START_FAILED = ("Kernel died before replying to kernel_info", "Kernel didn't respond to heartbeats")
SPACING_S = 3.0
_launch_lock = threading.Lock()
_last_launch = [0.0]


def run_process(cmd: list[str], env: dict, out, cwd=None, name: str = "") -> int:
    """subprocess.run(cmd), its stdout and stderr appended to the open text file `out`; started at least SPACING_S
    after any other launch of this process, and once more if its kernel died while starting."""
    for attempt in (1, 2):
        with _launch_lock:
            time.sleep(max(0.0, _last_launch[0] + SPACING_S - time.time()))
            _last_launch[0] = time.time()
        with tempfile.TemporaryFile() as tmp:
            code = subprocess.run(cmd, env=env, cwd=cwd, stdout=tmp, stderr=subprocess.STDOUT).returncode
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
        out.write(text)
        if code == 0 or attempt == 2 or not kernel_start_failed(text):
            return code
        out.write("\n--- the kernel died while starting; starting it once more\n")
        print(f"{name}: the kernel died while starting; starting it once more", file=sys.stderr, flush=True)


def kernel_start_failed(output: str) -> bool:
    return any(s in output for s in KERNEL_START_FAILED)


def thread_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def execute(src: Path, out: Path, profile: str, seed: int, threads: int) -> dict:
    """Execute one chapter in its own papermill process; its row of the record."""
    dst = out / "notebooks" / src.name
    log = out / "logs" / f"{src.stem}.log"
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as claims_log:
        pass
    env = {**thread_env(threads), "DIFFREP_PROGRESS": "0",        # no progress bars in executed pages
           "DIFFREP_CLAIMS_LOG": claims_log.name}
    cmd = papermill_command(src, dst, profile, seed)
    t0 = time.time()
    try:
        with open(log, "w") as f:
            code = run_process(cmd, env, f, name=src.stem)
        wall = time.time() - t0
        claims = [json.loads(line) for line in Path(claims_log.name).read_text().splitlines() if line.strip()]
    finally:
        Path(claims_log.name).unlink(missing_ok=True)
    if dst.exists():
        finish(dst, threads)
    return {"chapter": src.stem, "wall_s": round(wall, 1), "threads": threads, "ok": code == 0,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "claims": claims}


def run(profile: str, seed: int, names=None, out: Path = OUT, jobs: int | None = None) -> list[dict]:
    import torch

    import diffrep_lib as dr

    resolved = dr.profile.resolve(profile)
    device = dr.profile.device_for(resolved)
    book = chapters(names)
    found = longest_first(book, walls_for(resolved, out))
    jobs, threads = plan(len(found), device, jobs)
    for sub in ("notebooks", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    common = {"profile": resolved, "seed": seed, "device": device, "jobs": jobs, "library": dr.__version__,
              "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None}
    print(f"executing {len(found)} chapters at profile {resolved}, seed {seed}, on {device}: {jobs} at a time, "
          f"{threads} thread{'s' * (threads > 1)} each", flush=True)
    rows = {}
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(execute, src, out, resolved, seed, threads): src for src in found}
        for fut in as_completed(futures):
            row = {**common, **fut.result()}
            rows[row["chapter"]] = row
            write_record([rows[p.stem] for p in book if p.stem in rows], out)    # kept as chapters finish
            held = sum(c["holds"] for c in row["claims"])
            print(f"{row['chapter']}: {'ok' if row['ok'] else 'FAILED'} in {row['wall_s']:.0f} s "
                  f"({held}/{len(row['claims'])} claims held)", flush=True)
    ordered = [rows[p.stem] for p in book]
    failed = [r["chapter"] for r in ordered if not r["ok"]]
    for name in failed:
        tail = (out / "logs" / f"{name}.log").read_text().splitlines()[-40:]
        print(f"\n--- {name} failed; the end of {out / 'logs' / name}.log:\n" + "\n".join(tail), file=sys.stderr)
    if failed:
        raise RuntimeError(f"{len(failed)} chapter(s) failed: {', '.join(failed)} (logs in {out / 'logs'}; the "
                           f"executed notebooks show the failing cell)")
    return ordered


def write_record(rows: list[dict], out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "record.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(out / "record.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chapters", nargs="*")
    ap.add_argument("--jobs", type=int, help="chapters at once (default: 2 on a CPU, 1 on a GPU)")
    ap.add_argument("--summary", action="store_true", help="print the last record and where the book is")
    ap.add_argument("--save-walls", action="store_true",
                    help=f"write {WALLS.relative_to(ROOT)} from the last record (a full quick run): the order in "
                         "which a fresh clone starts the chapters, longest first")
    args = ap.parse_args()
    if args.save_walls:
        saved = save_walls()
        print(f"wrote {WALLS.relative_to(ROOT)}: {len(saved['walls'])} chapters, measured {saved['date']}")
        return 0
    if args.summary:
        rows = json.loads(RECORD.read_text())
        print(f"\nThe book is at {ROOT / '_build' / 'html' / 'index.html'}\n")
        print(table(rows))
        return 0
    try:
        rows = run(args.profile, args.seed, args.chapters, jobs=args.jobs)
    except RuntimeError as err:
        print(f"\nrun_book: {err}", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
