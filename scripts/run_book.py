"""Execute the book's chapters with papermill and keep a record of each run.

    python scripts/run_book.py --profile quick [--seed 0] [--chapters 01_foundations]
    python scripts/run_book.py --summary          # print the last record as a table

Executed copies go to _build/executed/notebooks/, with the injected-parameters cell tagged so the book
hides it; _build/executed/record.json holds per chapter: profile, device, wall time, date, library
version and every claim with its verdict (read from DIFFREP_CLAIMS_LOG, which `dr.claims.check` writes).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from diffrep_lib.cli import table      # the record as a table, as `diffrep record` prints it

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "executed"
RECORD = OUT / "record.json"


def chapters(names=None) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if names:
        found = [p for p in found if p.stem in names]
    return found


def hide_injected_parameters(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    nbformat.write(nb, path)


def run(profile: str, seed: int, names=None, out: Path = OUT) -> list[dict]:
    import papermill as pm
    import torch

    import diffrep_lib as dr

    resolved = dr.profile.resolve(profile)
    device = dr.profile.device_for(resolved)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["DIFFREP_PROGRESS"] = "0"           # no progress bars in executed pages
    rows = []
    for src in chapters(names):
        dst = out / "notebooks" / src.name
        with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as log:
            os.environ["DIFFREP_CLAIMS_LOG"] = log.name
        t0 = time.time()
        error = None
        try:
            pm.execute_notebook(str(src), str(dst), parameters={"profile": resolved, "seed": seed},
                                kernel_name="python3", progress_bar=False, cwd=str(src.parent))
        except Exception as err:  # recorded, then re-raised after the record is written
            error = err
        wall = time.time() - t0
        claims = [json.loads(line) for line in Path(log.name).read_text().splitlines() if line.strip()]
        Path(log.name).unlink()
        if dst.exists():
            hide_injected_parameters(dst)
        rows.append({"chapter": src.stem, "profile": resolved, "seed": seed, "device": device,
                     "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                     "wall_s": round(wall, 1), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "library": dr.__version__, "ok": error is None, "claims": claims})
        print(f"{src.stem}: {'ok' if error is None else 'FAILED'} in {wall:.0f} s "
              f"({sum(c['holds'] for c in claims)}/{len(claims)} claims held)", flush=True)
        if error is not None:
            write_record(rows, out)
            raise error
    write_record(rows, out)
    return rows


def write_record(rows: list[dict], out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "record.json").write_text(json.dumps(rows, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chapters", nargs="*")
    ap.add_argument("--summary", action="store_true", help="print the last record and where the book is")
    args = ap.parse_args()
    if args.summary:
        rows = json.loads(RECORD.read_text())
        print(f"\nThe book is at {ROOT / '_build' / 'html' / 'index.html'}\n")
        print(table(rows))
        return 0
    rows = run(args.profile, args.seed, args.chapters)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
