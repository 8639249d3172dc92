"""Claims: a chapter's headline results as checked statements (docs/ARCHITECTURE.md, "Claims").

    dr.claims.check("DPM-Solver++ at 10 NFE beats DDIM at 10 NFE in FID-FM", fid["dpmpp_2m", 10] < fid["ddim", 10],
                    control="DDIM at the same NFE", margin=(fid["ddim", 10] - fid["dpmpp_2m", 10], se),
                    detail={"fid": ...})

    dr.claims.table()   # the closing table: every claim, its control, margin, seeds, profiles

prints one stable verdict line (the cell is marked `# NBVAL_CHECK_OUTPUT`, so nbval compares it) and raises
`ClaimFailed` when the statement does not hold, which fails papermill, nbval and CI. The numbers go to
`detail`, which the notebook prints in a separate, unchecked cell (they vary with seed and profile).
A claim that needs more compute than `quick` gives is declared `full_only`: at `quick` it reports its
verdict without raising, and says it is checked at `full`.
When DIFFREP_CLAIMS_LOG names a file, each claim is appended to it as a JSON line (the execution record
and `make claims-seeds` read it).

Every claim names its `control` (the strongest cheap alternative explanation it is measured against) and its
`margin`: the measured effect (a number, or (number, standard error)) in the units of the statement. `table()`
joins the claims of this run with the book's records of other runs: `book/records/claims-seeds.json` (written
by `make claims-seeds`: each claim at seeds 0, 1, 2 at `quick`) and `book/records/full.json` (the `full` run).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path


class ClaimFailed(AssertionError):
    """A chapter's claim did not hold."""


@dataclass
class Claim:
    statement: str
    holds: bool
    detail: dict = field(default_factory=dict)
    checked: bool = True
    control: str = ""
    margin: float | None = None
    se: float | None = None

    def show(self) -> None:
        """Print the numbers behind the verdict (for the unchecked cell after the claim)."""
        for k, v in self.detail.items():
            print(f"  {k}: {_fmt(v)}")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):
        return v.item()
    return v


def _margin(margin) -> tuple[float | None, float | None]:
    if margin is None:
        return None, None
    value, se = margin if isinstance(margin, (tuple, list)) else (margin, None)
    return float(_jsonable(value)), (None if se is None else float(_jsonable(se)))


_CHECKED: dict[str, Claim] = {}      # this process's claims, by statement (a cell run again replaces its claim)


def check(statement: str, holds, *, control: str = "", margin=None, detail: dict | None = None,
          full_only: bool = False, profile: str | None = None) -> Claim:
    """Verdict line for a claim; raises ClaimFailed if it does not hold (unless full_only at quick).

    control: what the claim is measured against; margin: the measured effect, a number or (number, standard
    error), in the statement's units (positive where the claim's direction holds)."""
    value, se = _margin(margin)
    claim = Claim(statement, bool(holds), _jsonable(detail or {}), checked=not (full_only and profile != "full"),
                  control=control, margin=value, se=se)
    _CHECKED[statement] = claim
    log = os.environ.get("DIFFREP_CLAIMS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"statement": statement, "holds": claim.holds, "checked": claim.checked,
                                "profile": profile, "control": control, "margin": value, "se": se,
                                "detail": claim.detail}) + "\n")
    if not claim.checked:
        mark = "✓" if claim.holds else "·"
        print(f"{mark} CLAIM (checked at full; quick numbers shown): {statement}")
        return claim
    if not claim.holds:
        print(f"✗ CLAIM FAILED: {statement}")
        claim.show()
        raise ClaimFailed(f"{statement}: does not hold; {_fmt(claim.detail)}")
    print(f"✓ CLAIM: {statement}")
    return claim


# ------------------------------------------------------------------------------------------------ the table

def records_dir() -> Path | None:
    """Where the book's execution records are: $DIFFREP_RECORDS, else book/records of the clone the library is
    imported from (None for an installed package without the book)."""
    env = os.environ.get("DIFFREP_RECORDS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "book" / "records"
    return path if path.is_dir() else None


def _read(name: str):
    where = records_dir()
    if where is None or not (where / name).exists():
        return None
    return json.loads((where / name).read_text())


def fmt_margin(value: float | None, se: float | None = None) -> str:
    """'+0.026 ± 0.006' (three significant digits; '' without a margin)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    out = f"{value:+.3g}"
    return out + (f" ± {se:.2g}" if se is not None else "")


def seed_summary(runs: list[dict]) -> str:
    """'3/3 (seeds 0, 1, 2); margin +0.01 to +0.03' from a claim's runs in the seeds record."""
    if not runs:
        return "not run at other seeds yet"
    held = [r["seed"] for r in runs if r["holds"]]
    out = f"{len(held)}/{len(runs)} (seeds {', '.join(str(r['seed']) for r in runs)})"
    if len(held) < len(runs):
        out += f"; fails at {', '.join(str(r['seed']) for r in runs if not r['holds'])}"
    margins = [r["margin"] for r in runs if r.get("margin") is not None]
    if margins:
        out += f"; margin {fmt_margin(min(margins))} to {fmt_margin(max(margins))}"
    return out


def _full_summary(statement: str, full: list | None) -> str:
    for row in full or []:
        for c in row["claims"]:
            if c["statement"] == statement:
                verdict = "holds" if c["holds"] else "does not hold"
                m = fmt_margin(c.get("margin"), c.get("se"))
                return f"{verdict}{' (' + m + ')' if m else ''}"
    return "not run at full yet"


def table(claims: list[Claim] | None = None, *, profile: str | None = None):
    """The chapter's closing table (a DataFrame): each claim of this run with its control and margin, how it
    fared at seeds 0-2 (book/records/claims-seeds.json) and at `full` (book/records/full.json)."""
    import pandas as pd

    claims = list(_CHECKED.values()) if claims is None else claims
    seeds = _read("claims-seeds.json") or {}
    runs = {c["statement"]: c["runs"] for c in seeds.get("claims", [])}
    full = _read("full.json")
    this = f"this run ({profile})" if profile else "this run"
    rows = [{"claim": c.statement, "control": c.control or "-",
             this: ("holds" if c.holds else "does not hold") + (f", {fmt_margin(c.margin, c.se)}"
                                                               if c.margin is not None else ""),
             f"seeds ({seeds.get('profile', 'quick')})": seed_summary(runs.get(c.statement, [])),
             "full": _full_summary(c.statement, full)} for c in claims]
    frame = pd.DataFrame(rows)
    frame.index = range(1, len(frame) + 1)
    return frame.style.set_properties(**{"text-align": "left", "white-space": "normal"}) \
        .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
