"""`diffrep run` and `diffrep record`: find a chapter of a clone, execute it with papermill into a folder, and keep
its row (profile, device, wall time, claims) in the execution record, which `diffrep record` prints as a table
(scripts/run_book.py writes and prints the same record for the whole book)."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import torch

from ..support import profile
from .common import REPOSITORY, Failure, UsageError, version

INSTALL_BOOK = 'pip install "diffrep_lib[book]"'
NOTEBOOKS = Path("notebooks")                            # the chapters, in a clone, relative to the current folder
EXECUTED = Path("_build") / "executed" / "notebooks"     # where `diffrep run` writes executed chapters by default
RECORD = Path("_build") / "executed" / "record.json"     # the execution record beside them (scripts/run_book.py's)


def papermill_available() -> bool:
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


def papermill_command(src: Path, dst: Path, profile: str, seed: int) -> list[str]:
    """The command that executes chapter `src` into `dst` with its parameters, in the chapter's folder, with no
    progress bar (also scripts/run_book.py's)."""
    return [sys.executable, "-m", "papermill", str(src), str(dst), "-p", "profile", profile, "-p", "seed", str(seed),
            "-k", "python3", "--cwd", str(src.parent), "--no-progress-bar"]


def run_chapter(args) -> int:
    src = find_chapter(args.chapter)
    if not papermill_available():
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
    cmd = papermill_command(src, dst, resolved, args.seed)
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
                   "library": version().split()[-1], "ok": ok, "claims": claims}, record)
    print(f"{src.stem}: {'ok' if ok else 'FAILED'} in {wall:.0f} s "
          f"({sum(c['holds'] for c in claims)}/{len(claims)} claims held)", flush=True)
    if not ok:
        where = f"; the executed notebook shows where: {dst}" if dst.exists() else ""
        raise Failure(f"{src.stem} failed: {_last_line(proc.stdout)}{where}")
    print(f"executed notebook: {dst}\nexecution record: {record} (`diffrep record` prints it)")
    return 0


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
