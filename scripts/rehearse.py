"""Rehearse the `full` profile on the CPU: every chapter's full-profile code path, with miniature training.

    python scripts/rehearse.py                          # all chapters (make rehearse)
    python scripts/rehearse.py --chapters 09_assignment_guidance --steps 20   # 20 steps: chapter 2 needs 100

The published book runs at `full` on a GPU, and so does every Colab reader (`auto` picks `full` on CUDA), but CI
has no GPU: a bug on a path that only `full` takes (three guidance scales instead of one, k = 10, 50 and 200
clusters, a curve point every 1,000 steps, larger probes) would first show on somebody's GPU. This script executes
each chapter with papermill at profile='full' on the CPU with the full recipes' architectures, objectives, teachers
and grids unchanged, and only their sizes cut: every full recipe trains `--steps` steps (100) on batches of at most 32,
curve recipes record two curve points, and the profile's sample, reference, probe and evaluation sizes shrink
(`miniature`). It shows that the code runs, not that the claims hold: a model trained 100 steps holds none of them,
so each claim is printed with its verdict and the chapter goes on. Training and memos go to a temporary
DIFFREP_CACHE (the shipped weights and the user's cache are not touched); the executed copies go to
_build/rehearsal/notebooks/ for inspection.

The kernel is patched through an IPython startup file in a temporary IPYTHONDIR, so the library has no
rehearsal switch that could be left on.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "rehearsal"
BATCH = 32
# the profile's sizes that only scale the work, cut to a rehearsal's (its grids and scales are kept)
SIZES = dict(n_samples=200, n_ref=500, n_toy=500, toy_steps=50, probe_sizes=(600, 300), seg_eval=20,
             dift_ensemble=2, hyper_steps=20, align_probe_sizes=(600, 300), augment_sizes=(10, 20, 100, 1000))


def miniature(steps: int) -> None:
    """Cut every `full` recipe to `steps` training steps (batches of at most 32, two curve points where the recipe
    records a curve) and the `full` profile to SIZES, in this process; `quick` is left as it is."""
    from diffrep_lib import profile, recipes

    for presets in recipes.RECIPES.values():
        r = presets.get("full")
        if r is not None:
            presets["full"] = dataclasses.replace(
                r, steps=min(r.steps, steps), warmup=min(r.warmup, steps // 4),
                batch_size=min(r.batch_size, BATCH), curve_every=max(1, steps // 2) if r.curve_every else 0)
    profile.PROFILES["full"] = dataclasses.replace(profile.PROFILES["full"], **SIZES)


def report_claims() -> None:
    """Replace dr.claims.check by a version that prints the verdict and never raises (claims do not hold after a
    few steps); the detail must still be JSON, as the execution record needs it."""
    from diffrep_lib import claims

    def check(statement, holds, *, detail=None, full_only=False, profile=None):
        claim = claims.Claim(statement, bool(holds), claims._jsonable(detail or {}), checked=False)
        line = json.dumps({"statement": statement, "holds": claim.holds, "checked": False, "profile": profile,
                           "detail": claim.detail})
        if os.environ.get("DIFFREP_CLAIMS_LOG"):
            with open(os.environ["DIFFREP_CLAIMS_LOG"], "a") as f:
                f.write(line + "\n")
        print(f"{'✓' if claim.holds else '·'} REHEARSAL CLAIM (not checked after miniature training): {statement}")
        return claim

    claims.check = check


def kernel_setup(steps: int) -> None:
    """What the rehearsal kernel runs before the chapter (from its IPython startup file)."""
    miniature(steps)
    report_claims()


def startup_dir(tmp: Path, steps: int) -> Path:
    """A fresh IPYTHONDIR whose startup file calls kernel_setup(steps)."""
    ipython = tmp / "ipython"
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-rehearsal.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'scripts')!r})\n"
        f"import rehearse\nrehearse.kernel_setup({int(steps)})\n")
    return ipython


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", nargs="*", help="notebook stems (default: all)")
    ap.add_argument("--steps", type=int, default=100,
                    help="training steps of every full recipe (default 100: two points of the loss log, which is kept "
                         "every 50 steps and which chapter 2 splits into halves)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error(f"--steps must be at least 2 (a curve recipe records two points), got {args.steps}")
    sys.path.insert(0, str(ROOT / "scripts"))
    import run_book

    names = [p.stem for p in run_book.chapters(args.chapters)]
    if not names:
        raise SystemExit(f"no chapter matches {args.chapters}; the chapters are "
                         f"{[p.stem for p in run_book.chapters()]}")
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="diffrep-rehearsal-") as tmp:
        os.environ["IPYTHONDIR"] = str(startup_dir(Path(tmp), args.steps))
        os.environ["DIFFREP_CACHE"] = str(Path(tmp) / "cache")
        os.environ.pop("DIFFREP_PROFILE", None)
        t0 = time.time()
        for name in names:
            try:
                rows += run_book.run("full", 0, [name], out=OUT)
            except Exception as err:   # keep going: a rehearsal reports every chapter that breaks
                failed.append(name)
                print(f"{name}: FAILED at full: {type(err).__name__}: {str(err).splitlines()[0][:300]}", flush=True)
    print(f"\nrehearsal of the full profile, {args.steps} training steps per recipe, "
          f"{time.time() - t0:.0f} s; executed copies in {OUT / 'notebooks'}")
    for r in rows:
        print(f"  {r['chapter']:<24} ok   {r['wall_s']:>6.0f} s  {len(r['claims'])} claims evaluated")
    for name in failed:
        print(f"  {name:<24} FAILED (see {OUT / 'notebooks' / (name + '.ipynb')})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
