"""Where the library keeps its files and how it runs here: the cache folder and progress bars (bfloat16 is the
core's `precision`).

Environment: DIFFREP_CACHE (trained models and memoised evaluations; default ~/.cache/diffrep) and
DIFFREP_PROGRESS=0 (no progress bars, as in executed book pages).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The folder of trained models (zoo/) and memoised evaluations (memo/)."""
    return Path(os.environ.get("DIFFREP_CACHE", Path.home() / ".cache" / "diffrep"))


def progress_enabled() -> bool:
    """Progress bars on terminals and in Jupyter, none in executed book pages (DIFFREP_PROGRESS=0)."""
    return os.environ.get("DIFFREP_PROGRESS", "1") != "0"

