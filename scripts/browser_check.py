"""Open every built page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) and fail
if an image does not load, a math element is not rendered by MathJax, MathJax is loaded more than once, an
internal link is broken, or the header lacks its repository, issue and edit buttons (and, on a chapter, the
Colab launch button).
Screenshots go to _build/screenshots/.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SKIP = {"genindex.html", "search.html", "py-modindex.html"}


def pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html")
                  if p.name not in SKIP and "_static" not in p.parts and "_sources" not in p.parts
                  and p.name != "index.html")


def check_page(page, path: Path) -> list[str]:
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
    if len(mathjax) != 1:
        problems.append(f"{path.name}: MathJax is loaded {len(mathjax)} times: {mathjax}")
    header = page.evaluate("() => Array.from(document.querySelectorAll('.header-article a[href]'))"
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
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.relative_to(HTML).as_posix().replace('/', '__')}.png"), full_page=True)
    return problems


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not (HTML / "index.html").exists():
        print("no built book in _build/html: run make book or make test", file=sys.stderr)
        return 2
    found = pages()
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((HTML / "index.html").as_uri())
        page.wait_for_url("**/book/preface.html", timeout=10000)   # the root redirect reaches the preface
        for path in found:
            problems += check_page(page, path)
        browser.close()
    print(f"browser check: {len(found)} pages, {len(problems)} problems; screenshots in {SHOTS}")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
