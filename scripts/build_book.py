"""Build the HTML book from the executed chapters.

Stages the book sources (config, toc, book/, _vendor/) beside the executed notebooks in _build/executed,
writes the execution-record page from record.json (and from a committed GPU record, if any), then runs
`jupyter-book build` on that tree into _build/html. `--strict` adds -W -n --keep-going (what make test runs).

`--edition student` builds the student edition: the same tree is staged afresh into _build/executed-student,
every solution (a `{solution}` block, or everything from a `{solution-start}` directive through its
`{solution-end}`, the cells between included) is cut from the staged chapters, the exercises are kept, and the
book goes to _build/html-student. The default edition and its sources are never touched.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_build" / "executed"
STUDENT_STAGE = ROOT / "_build" / "executed-student"     # the student edition's own staged tree
# per edition: where jupyter-book builds it, where its HTML goes (both editions can coexist)
EDITIONS = {
    "default": (ROOT / "_build" / "jb", ROOT / "_build" / "html"),
    "student": (ROOT / "_build" / "jb-student", ROOT / "_build" / "html-student"),
}
FULL_RECORD = ROOT / "book" / "records" / "full.json"


def record_markdown(rows: list[dict], title: str) -> str:
    out = [f"## {title}", "",
           "| chapter | profile | device | wall time | date | library | claims held |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        dev = r["gpu"] or r["device"]
        held = sum(c["holds"] for c in r["claims"])
        wall = f"{r['wall_s']:.0f} s"
        if r.get("jobs", 1) > 1:          # side by side with another chapter: longer than the chapter alone
            wall += f" ({r['threads']} thread{'s' * (r['threads'] > 1)}, {r['jobs']} chapters at once)"
        out.append(f"| {r['chapter']} | {r['profile']} | {dev} | {wall} | {r['date'][:10]} | "
                   f"{r['library']} | {held}/{len(r['claims'])} |")
    out += ["", "| chapter | claim | verdict |", "|---|---|---|"]
    for r in rows:
        for c in r["claims"]:
            verdict = ("holds" if c["holds"] else "does not hold") + ("" if c["checked"] else " (checked at full)")
            out.append(f"| {r['chapter']} | {c['statement']} | {verdict} |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ the student edition
# A MyST directive is a fenced block: an opening line of 3+ backticks or colons followed by {name}, closed by a line
# of the same character, at least as long (a nested fence is shorter, so it does not close it).
_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})[ \t]*\{(?P<name>solution|solution-start|solution-end)\}[^\n]*$",
                   re.M)


def _directives(text: str) -> list[tuple[int, int, str]]:
    """The solution directives in a Markdown text, in order: (start, end, name), `end` past the closing fence
    and its newline (or the end of the text, where the block is not closed)."""
    found, pos = [], 0
    while (m := _OPEN.search(text, pos)):
        fence = m["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$\n?", re.M)
        close = closing.search(text, m.end() + 1)
        end = close.end() if close else len(text)
        found.append((m.start(), end, m["name"]))
        pos = end
    return found


def strip_solutions(nb: dict, name: str = "notebook") -> dict:
    """A copy of the notebook `nb` (nbformat JSON) without its solutions: each `{solution}` block, and everything
    from a `{solution-start}` directive through its `{solution-end}` directive (whole cells in between, code cells
    included; where a directive shares a Markdown cell with other text, the cut is made at the directive). A cell
    left empty by a cut is dropped; every other cell is kept as it is. Unbalanced directives raise ValueError."""
    out = copy.deepcopy(nb)
    cells, inside = [], False
    for cell in out["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] != "markdown" or not _OPEN.search(source):
            if not inside:
                cells.append(cell)
            continue
        kept, pos = [], 0
        for start, end, kind in _directives(source):
            if kind == "solution-end":
                if not inside:
                    raise ValueError(f"{name}: {{solution-end}} without a {{solution-start}}")
                inside = False
            elif inside:
                raise ValueError(f"{name}: {{{kind}}} inside a solution that has not ended")
            else:
                kept.append(source[pos:start])
                inside = kind == "solution-start"
            pos = end
        if not inside:
            kept.append(source[pos:])
        text = "\n\n".join(part.strip("\n") for part in kept if part.strip())
        if text:
            cell["source"] = text.splitlines(keepends=True)
            cells.append(cell)
    if inside:
        raise ValueError(f"{name}: a {{solution-start}} without its {{solution-end}}")
    out["cells"] = cells
    return out


def strip_tree(folder: Path) -> tuple[int, int]:
    """Strip the solutions from every notebook under `folder`, in place; returns (solutions, cells) removed."""
    solutions = cells = 0
    for path in sorted(folder.rglob("*.ipynb")):
        nb = json.loads(path.read_text())
        stripped = strip_solutions(nb, path.name)
        solutions += sum(name != "solution-end" for c in nb["cells"] if c["cell_type"] == "markdown"
                         for *_, name in _directives("".join(c["source"])))
        cells += len(nb["cells"]) - len(stripped["cells"])
        path.write_text(json.dumps(stripped, indent=1, ensure_ascii=False) + "\n")
    return solutions, cells


def stage(target: Path = STAGE, executed: Path = STAGE) -> None:
    """Stage the book sources into `target`; unless it is `executed` itself, `target` is first emptied and the
    executed chapters and record.json are copied into it."""
    if target.resolve() != executed.resolve():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(executed / "record.json", target / "record.json")
        shutil.copytree(executed / "notebooks", target / "notebooks")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, target / name)
    for folder in ("book", "_vendor"):
        shutil.rmtree(target / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, target / folder)
    rows = json.loads((target / "record.json").read_text())
    text = record_markdown(rows, "This build")
    if FULL_RECORD.exists():
        text += "\n" + record_markdown(json.loads(FULL_RECORD.read_text()), "Last run at the full profile (GPU)")
    page = target / "book" / "execution.md"
    page.write_text(page.read_text().replace("<!-- RECORD -->", text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    ap.add_argument("--edition", choices=sorted(EDITIONS), default="default",
                    help="default: solutions collapsed under the exercises, into _build/html; "
                         "student: no solutions, into _build/html-student")
    ap.add_argument("--executed", type=Path, default=STAGE,
                    help="the executed chapters (notebooks/ and record.json) to build from (default: %(default)s)")
    args = ap.parse_args()
    executed = args.executed.resolve()
    if not (executed / "record.json").exists():
        print(f"no executed chapters in {executed}: run scripts/run_book.py first", file=sys.stderr)
        return 2
    jb_dir, html = EDITIONS[args.edition]
    if args.edition == "default":
        stage_dir = executed                    # as always: the sources staged beside the executed chapters
        stage(stage_dir, executed)
    else:                                       # a separate tree, re-staged on every build
        stage_dir = STUDENT_STAGE
        stage(stage_dir, executed)
        solutions, cells = strip_tree(stage_dir / "notebooks")
        print(f"student edition: {solutions} solutions cut ({cells} whole cells) from the chapters in {stage_dir}")
    # --all: a full rebuild every time; Sphinx's incremental build keeps a stale bibliography page when a chapter
    # cites a new reference (its citation links then point at anchors that do not exist)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage_dir), "--all",
           "--path-output", str(jb_dir)]
    if args.strict:
        cmd += ["-W", "-n", "--keep-going"]
    rc = subprocess.run(cmd).returncode
    if rc == 0:
        shutil.rmtree(html, ignore_errors=True)
        shutil.copytree(jb_dir / "_build" / "html", html)
        print(f"book: {html / 'index.html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
