"""`make claims-seeds`: execute the chapters at `quick` for several seeds and report, per claim, how
often it held and its numbers. A benchmark, not part of make test; executed copies go to
_build/claims-seeds/seed<N>/ and each chapter keeps running after a failed claim so every seed is counted.

The result is kept in book/records/claims-seeds.json (committed: each chapter's closing claims table reads it).
A run over some chapters replaces those chapters' entries and keeps the others.

    make claims-seeds                                          # every chapter, seeds 0 1 2
    python scripts/claims_seeds.py --chapters 03_guidance      # one chapter
    python scripts/claims_seeds.py --seeds 1 2                 # seed 0 kept from the record ...
    python scripts/claims_seeds.py --from-record _build/executed/record.json   # ... or taken from make test's run
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run_book  # noqa: E402


RECORD = run_book.ROOT / "book" / "records" / "claims-seeds.json"


def save(results: dict, args, path: Path) -> None:
    """Merge this run into the record: a chapter run now keeps only the claims it made now, each with the runs of
    this call's seeds replacing its old runs at those seeds (other seeds' runs are kept); chapters not run are
    kept as they were."""
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("profile", args.profile) != args.profile:
        old = {}
    before = {(c["chapter"], c["statement"]): c["runs"] for c in old.get("claims", [])}
    ran = {chapter for chapter, _ in results}
    claims = [c for c in old.get("claims", []) if c["chapter"] not in ran]
    for (chapter, statement), runs in results.items():
        new = [{"seed": seed, "holds": holds, "margin": c.get("margin"), "se": c.get("se")}
               for seed, holds, _, c in runs]
        kept = [r for r in before.get((chapter, statement), []) if r["seed"] not in args.seeds]
        claims.append({"chapter": chapter, "statement": statement,
                       "runs": sorted(kept + new, key=lambda r: r["seed"])})
    claims.sort(key=lambda c: c["chapter"])
    record = {"profile": args.profile, "date": datetime.date.today().isoformat(), "claims": claims}
    path.write_text(json.dumps(record, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--chapters", nargs="*")
    ap.add_argument("--from-record", type=Path,
                    help="take the runs from an execution record (run_book's record.json) instead of executing")
    args = ap.parse_args()
    results = defaultdict(list)
    if args.from_record:
        rows = json.loads(args.from_record.read_text())
        rows = [r for r in rows if r["profile"] == args.profile and (not args.chapters or r["chapter"] in args.chapters)]
        args.seeds = sorted({r["seed"] for r in rows})
        for r in rows:
            for c in r["claims"]:
                results[(r["chapter"], c["statement"])].append((r["seed"], c["holds"], c["detail"], c))
    for seed in ([] if args.from_record else args.seeds):
        out = run_book.ROOT / "_build" / "claims-seeds" / f"seed{seed}"
        try:
            rows = run_book.run(args.profile, seed, args.chapters, out=out)
        except Exception as err:  # a failed claim stops that chapter; its record is still written
            print(f"seed {seed}: {type(err).__name__}", file=sys.stderr)
            rows = json.loads((out / "record.json").read_text())
        for r in rows:
            for c in r["claims"]:
                results[(r["chapter"], c["statement"])].append((seed, c["holds"], c["detail"], c))
    save(results, args, RECORD)
    print(f"\nclaims at profile {args.profile}, seeds {args.seeds} (kept in {RECORD.relative_to(run_book.ROOT)})")
    for (chapter, statement), runs in results.items():
        held = sum(h for _, h, _, _ in runs)
        print(f"\n[{held}/{len(runs)}] {chapter}: {statement}")
        for seed, holds, detail, _ in runs:
            print(f"    seed {seed}: {'holds' if holds else 'FAILS'}  {json.dumps(detail)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
