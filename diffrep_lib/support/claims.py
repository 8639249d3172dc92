"""Claims: a chapter's headline results as checked statements (docs/ARCHITECTURE.md, "Claims").

    dr.claims.check("DPM-Solver++ at 10 NFE beats DDIM at 10 NFE in FID-FM", fid["dpmpp_2m", 10] < fid["ddim", 10],
                    detail={"fid": ...})

prints one stable verdict line (the cell is marked `# NBVAL_CHECK_OUTPUT`, so nbval compares it) and raises
`ClaimFailed` when the statement does not hold, which fails papermill, nbval and CI. The numbers go to
`detail`, which the notebook prints in a separate, unchecked cell (they vary with seed and profile).
A claim that needs more compute than `quick` gives is declared `full_only`: at `quick` it reports its
verdict without raising, and says it is checked at `full`.
When DIFFREP_CLAIMS_LOG names a file, each claim is appended to it as a JSON line (the execution record
and `make claims-seeds` read it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


class ClaimFailed(AssertionError):
    """A chapter's claim did not hold."""


@dataclass
class Claim:
    statement: str
    holds: bool
    detail: dict = field(default_factory=dict)
    checked: bool = True

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


def check(statement: str, holds, *, detail: dict | None = None, full_only: bool = False,
          profile: str | None = None) -> Claim:
    """Verdict line for a claim; raises ClaimFailed if it does not hold (unless full_only at quick)."""
    claim = Claim(statement, bool(holds), _jsonable(detail or {}), checked=not (full_only and profile != "full"))
    log = os.environ.get("DIFFREP_CLAIMS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"statement": statement, "holds": claim.holds, "checked": claim.checked,
                                "profile": profile, "detail": claim.detail}) + "\n")
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
