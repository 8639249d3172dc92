"""Open every built page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) and fail
if an image does not load, a math element is not rendered by MathJax, MathJax is loaded more than once, an
internal link is broken, the header lacks its repository, issue and edit buttons (and, on a chapter, the
Colab launch button), or a code cell (folded cells and solutions included) is wider than its column.
Screenshots go to _build/screenshots/ (_build/screenshots-student/ for the student edition).

`--html PATH` checks another build (default _build/html). `--edition student` checks a student edition
(make book EDITION=student, in _build/html-student) as well: no page may contain a solution (sphinx-exercise's
`div.solution` admonition, or a `{solution...}` directive left unrendered), no chapter's source download
(_sources/) may contain a solution, and every chapter must still show each exercise of its notebook (at least 3).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SKIP = {"genindex.html", "search.html", "py-modindex.html"}


def pages(html: Path = HTML) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if p.name not in SKIP and "_static" not in p.parts and "_sources" not in p.parts
                  and p.name != "index.html")


def is_chapter(path: Path) -> bool:
    """A numbered chapter (the appendix A1 has no exercises), as tests/test_book.py counts them."""
    return "notebooks" in path.parts and path.stem[:2].isdigit()


def exercise_labels(stem: str) -> list[str]:
    """The labels of the exercises the chapter's notebook in notebooks/ poses ([] where there is none)."""
    source = NOTEBOOKS / f"{stem}.ipynb"
    if not source.exists():
        return []
    text = "\n".join("".join(c["source"]) for c in json.loads(source.read_text())["cells"]
                     if c["cell_type"] == "markdown")
    return re.findall(r"^ {0,3}(?:`{3,}|:{3,})[ \t]*\{exercise(?:-start)?\}[^\n]*\n(?::[\w-]+:[^\n]*\n)*?"
                      r":label:[ \t]*(\S+)", text, re.M)


def check_student_page(page, path: Path) -> list[str]:
    """The student edition: no solution on the page (sphinx-exercise renders one as div.solution, with the id
    <docname>-solution-<n> where it has no label), no directive left as text, every exercise of a chapter there."""
    problems = []
    n_solutions = page.evaluate("""() => Array.from(document.querySelectorAll('[class], [id]'))
        .filter(e => e.matches('div.solution, div.solution-start') || /-solution-\\d+$/.test(e.id)).length""")
    if n_solutions:
        problems.append(f"{path.name}: {n_solutions} solutions on a student page")
    if re.search(r"\{solution(?:-start|-end)?\}", page.inner_text("body")):
        problems.append(f"{path.name}: a solution directive left as text")
    if is_chapter(path):
        shown = page.evaluate("() => Array.from(document.querySelectorAll('div.exercise')).map(e => e.id)")
        missing = [label for label in exercise_labels(path.stem) if label not in shown]
        if len(shown) < 3 or missing:
            problems.append(f"{path.name}: {len(shown)} exercises shown" + (f", missing {missing}" if missing else ""))
    return problems


def check_sources(html: Path) -> list[str]:
    """The student edition: no page's downloadable source (.ipynb, .md) may contain a solution."""
    return [f"_sources/{src.relative_to(html / '_sources').as_posix()}: contains a solution directive"
            for src in sorted((html / "_sources").rglob("*")) if src.is_file()
            and re.search(r"\{solution(?:-start|-end)?\}", src.read_text(errors="replace"))]


def check_page(page, path: Path, html: Path = HTML, shots: Path = SHOTS) -> list[str]:
    problems = []
    page.goto(path.as_uri(), wait_until="load")
    n_math = page.locator(".math").count()
    if n_math:
        try:
            page.wait_for_function(
                "n => document.querySelectorAll('mjx-container').length >= n", arg=n_math, timeout=15000)
        except Exception:
            got = page.locator("mjx-container").count()
            problems.append(f"{path.name}: {got} of {n_math} math elements rendered by MathJax")
        if page.locator("mjx-merror").count():
            problems.append(f"{path.name}: MathJax reports {page.locator('mjx-merror').count()} TeX errors")
    mathjax = page.evaluate("""() => Array.from(document.scripts).map(s => s.getAttribute('src') || '')
        .filter(src => /mathjax/i.test(src))""")
    if len(mathjax) > 1 or (n_math and len(mathjax) != 1):   # Sphinx adds it only to a page with math
        problems.append(f"{path.name}: MathJax is loaded {len(mathjax)} times: {mathjax}")
    # sphinx-book-theme 1.x: the article header is .bd-header-article (older releases: .header-article)
    header = page.evaluate("() => Array.from(document.querySelectorAll("
                           "'.bd-header-article a[href], .header-article a[href]'))"
                           ".map(a => a.getAttribute('href'))")
    wanted = {"repository": "github.com/", "issues": "/issues", "edit page": "/edit/"}
    if "notebooks" in path.parts:
        wanted["Colab launch"] = "colab.research.google.com/github/"
    problems += [f"{path.name}: no {name} button in the header" for name, part in wanted.items()
                 if not any(part in href for href in header)]
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !/^https?:/.test(img.getAttribute('src') || ''))
        .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src'))""")
    # external images (the Colab badge) are not fetched: the check runs offline
    problems += [f"{path.name}: image does not load: {src}" for src in broken]
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
    for href in hrefs:
        url = urlparse(href)
        if url.scheme or href.startswith(("mailto:", "javascript:")):
            continue
        target = (path.parent / unquote(url.path)).resolve() if url.path else path
        if url.path and not target.exists():
            problems.append(f"{path.name}: broken link {href}")
        elif url.fragment and target.suffix == ".html":
            text = target.read_text(errors="replace")
            if f'id="{url.fragment}"' not in text:
                problems.append(f"{path.name}: link to a missing anchor {href}")
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{path.relative_to(html).as_posix().replace('/', '__')}.png"), full_page=True)
    # code a reader cannot see without scrolling sideways, folded cells and solutions opened (after the screenshot,
    # which shows the page as it opens): a cell or code block wider than its column
    page.evaluate("""() => { document.querySelectorAll('details').forEach(d => d.open = true);
        document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden')); }""")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('div.cell_input pre, div.cell_output pre'))
        .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
        .map(pre => pre.innerText.split('\\n').reduce((a, b) => b.length > a.length ? b : a, ''))""")
    problems += [f"{path.name}: code runs past the page's edge: {line.strip()[:60]!r}..." for line in wide]
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", type=Path, default=HTML, help="the built book to check (default: %(default)s)")
    ap.add_argument("--edition", choices=["default", "student"], default="default",
                    help="student: also fail on any solution, and on a chapter that lost an exercise")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    html = args.html.resolve()
    shots = SHOTS if args.edition == "default" else SHOTS.with_name(f"{SHOTS.name}-{args.edition}")
    if not (html / "index.html").exists():
        print(f"no built book in {html}: run make book or make test", file=sys.stderr)
        return 2
    found = pages(html)
    problems = check_sources(html) if args.edition == "student" else []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((html / "index.html").as_uri())
        page.wait_for_url("**/book/preface.html", timeout=10000)   # the root redirect reaches the preface
        for path in found:
            problems += check_page(page, path, html, shots)
            if args.edition == "student":
                problems += check_student_page(page, path)
        browser.close()
    edition = "" if args.edition == "default" else f" ({args.edition} edition)"
    print(f"browser check{edition}: {len(found)} pages, {len(problems)} problems; screenshots in {shots}")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
