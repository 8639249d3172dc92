"""Build the HTML book from the executed chapters.

Stages the book sources (config, toc, book/, _vendor/) beside the executed notebooks in _build/executed,
writes the execution-record page from record.json (and from a committed GPU record, if any), then runs
`jupyter-book build` on that tree into _build/html. `--strict` adds -W -n --keep-going (what make test runs).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_build" / "executed"
FULL_RECORD = ROOT / "book" / "records" / "full.json"


def record_markdown(rows: list[dict], title: str) -> str:
    out = [f"## {title}", "",
           "| chapter | profile | device | wall time | date | library | claims held |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r["gpu"] or r["device"]
        held = sum(c["holds"] for c in r["claims"])
        out.append(f"| {r['chapter']} | {r['profile']} | {dev} | {r['wall_s']:.0f} s | {r['date'][:10]} | "
                   f"{r['library']} | {held}/{len(r['claims'])} |")
    out += ["", "| chapter | claim | verdict |", "|---|---|---|"]
    for r in rows:
        for c in r["claims"]:
            verdict = ("holds" if c["holds"] else "does not hold") + ("" if c["checked"] else " (checked at full)")
            out.append(f"| {r['chapter']} | {c['statement']} | {verdict} |")
    return "\n".join(out) + "\n"


def stage() -> None:
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, STAGE / name)
    for folder in ("book", "_vendor"):
        shutil.rmtree(STAGE / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, STAGE / folder)
    rows = json.loads((STAGE / "record.json").read_text())
    text = record_markdown(rows, "This build")
    if FULL_RECORD.exists():
        text += "\n" + record_markdown(json.loads(FULL_RECORD.read_text()), "Last run at the full profile (GPU)")
    page = STAGE / "book" / "execution.md"
    page.write_text(page.read_text().replace("<!-- RECORD -->", text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    args = ap.parse_args()
    if not (STAGE / "record.json").exists():
        print("no executed chapters in _build/executed: run scripts/run_book.py first", file=sys.stderr)
        return 2
    stage()
    # --all: a full rebuild every time; Sphinx's incremental build keeps a stale bibliography page when a chapter
    # cites a new reference (its citation links then point at anchors that do not exist)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(STAGE), "--all",
           "--path-output", str(ROOT / "_build" / "jb")]
    if args.strict:
        cmd += ["-W", "-n", "--keep-going"]
    rc = subprocess.run(cmd).returncode
    if rc == 0:
        html = ROOT / "_build" / "html"
        shutil.rmtree(html, ignore_errors=True)
        shutil.copytree(ROOT / "_build" / "jb" / "_build" / "html", html)
        print(f"book: {html / 'index.html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
