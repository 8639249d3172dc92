"""`make claims-seeds`: execute the chapters at `quick` for several seeds and report, per claim, how
often it held and its numbers. A benchmark, not part of make test; executed copies go to
_build/claims-seeds/seed<N>/ and each chapter keeps running after a failed claim so every seed is counted.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run_book  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--chapters", nargs="*")
    args = ap.parse_args()
    results = defaultdict(list)
    for seed in args.seeds:
        out = run_book.ROOT / "_build" / "claims-seeds" / f"seed{seed}"
        try:
            rows = run_book.run(args.profile, seed, args.chapters, out=out)
        except Exception as err:  # a failed claim stops that chapter; its record is still written
            print(f"seed {seed}: {type(err).__name__}", file=sys.stderr)
            rows = json.loads((out / "record.json").read_text())
        for r in rows:
            for c in r["claims"]:
                results[(r["chapter"], c["statement"])].append((seed, c["holds"], c["detail"]))
    print(f"\nclaims at profile {args.profile}, seeds {args.seeds}")
    for (chapter, statement), runs in results.items():
        held = sum(h for _, h, _ in runs)
        print(f"\n[{held}/{len(runs)}] {chapter}: {statement}")
        for seed, holds, detail in runs:
            print(f"    seed {seed}: {'holds' if holds else 'FAILS'}  {json.dumps(detail)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
