"""The book's own conventions: layout, notebooks stored without outputs, parameters cells, claim cells,
Colab badges and install cells that use the repository URL of _config.yml, pins that agree."""
import json
import re
from pathlib import Path

import pytest
import yaml

import diffrep_lib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]


def cells(path):
    return json.loads(path.read_text())["cells"]


def src(cell):
    return "".join(cell["source"])


def test_layout():
    for name in ("_config.yml", "_toc.yml", "book", "notebooks", "diffrep_lib", "tests", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_toc_file_exists_and_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"(?:root|file):\s*(\S+)", toc)
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(nb):
    cs = cells(nb)
    code = [c for c in cs if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "stored with outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and 'profile = "auto"' in src(params[0]) and "seed = 0" in src(params[0])
    assert any("# NBVAL_CHECK_OUTPUT" in src(c) and "dr.claims.check" in src(c) for c in code)
    assert not [m for c in code for m in re.findall(r"^(?:def|class) (\w+)", src(c), re.M)], \
        "reusable code belongs in diffrep_lib"
    first_md = next(src(c) for c in cs if c["cell_type"] == "markdown")
    colab = f"https://colab.research.google.com/github/{REPO.split('github.com/')[1]}/blob/{BRANCH}/notebooks/{nb.name}"
    assert colab in first_md, "Colab badge must point at this notebook in the configured repository"
    assert "(https://colab.research.google.com/assets/colab-badge.svg)" in first_md, "badge image by absolute URL"
    install = next(src(c) for c in code if "google.colab" in src(c))
    needs_hub = any(re.search(r"transformers|HubEncoder|from_pretrained", src(c)) for c in code)
    spec = f'"diffrep_lib{"[hub]" if needs_hub else ""} @ git+{REPO}@v{diffrep_lib.__version__}"'
    assert spec in install, f"the install cell must pin this release with the chapter's extras: {spec}"
    assert "torch" not in install.split("pip")[1]
    for c in code:                                       # GPU-only work runs only where CUDA is present
        if re.search(r"\.cuda\(\)|\.to\(\"cuda\"\)", src(c)):
            assert "torch.cuda.is_available()" in src(c) and "else:" in src(c), src(c)[:80]
    assert "Learning objectives" in first_md and "Prerequisites" in first_md and "Run time" in first_md


# TeX macros that MathJax fetches as a separate extension when a page first uses them. The book ships MathJax
# with its pages (offline reading, file:// URLs), where that second fetch fails and no formula on the page renders.
AUTOLOADED = ("boldsymbol", "bm", "cancel", "bcancel", "xcancel", "color", "colorbox", "bbox", "enclose",
              "ce", "unicode", "bra", "ket", "braket", "mathclap", "coloneqq", "class", "cssId", "CD")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_math_uses_only_the_macros_mathjax_ships_with(nb):
    text = "".join(src(c) for c in cells(nb) if c["cell_type"] == "markdown")
    used = sorted(set(re.findall(r"\\(" + "|".join(AUTOLOADED) + r")(?![A-Za-z])", text)))
    assert not used, f"{used}: use \\mathbf or plain symbols (each loads a MathJax extension the book lacks)"


@pytest.mark.parametrize("page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.stem)
def test_pages_use_only_the_macros_mathjax_ships_with(page):
    used = sorted(set(re.findall(r"\\(" + "|".join(AUTOLOADED) + r")(?![A-Za-z])", page.read_text())))
    assert not used, f"{used}: use \\mathbf or plain symbols (each loads a MathJax extension the book lacks)"


WIDTH = 84    # characters of code that fit the content column (_vendor/diffrep.css; the browser check measures it)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_fits_the_page(nb):
    long = [line for c in cells(nb) if c["cell_type"] == "code" for line in src(c).splitlines()
            if len(line) > WIDTH]
    assert not long, f"{len(long)} code lines longer than {WIDTH} characters, e.g. {long[0]!r}"


def claim_calls(text: str) -> list[str]:
    """The argument text of every dr.claims.check(...) call in a cell (balanced parentheses)."""
    out = []
    for m in re.finditer(r"dr\.claims\.check\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end():i - 1])
    return out


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_claim_names_its_control_and_margin_and_the_chapter_ends_with_the_table(nb):
    code = [src(c) for c in cells(nb) if c["cell_type"] == "code"]
    calls = [call for c in code for call in claim_calls(c)]
    assert calls
    for call in calls:
        assert "control=" in call and "margin=" in call, f"claim without control= or margin=: {call[:90]!r}"
    ends = [i for i, c in enumerate(code) if "dr.claims.table(" in c]
    last_claim = max(i for i, c in enumerate(code) if "dr.claims.check(" in c)
    assert ends and ends[0] > last_claim, "the chapter's claims table comes after its last claim"


def test_environment_yml_has_the_same_pins_as_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {p for group in ("pinned", "book", "test") for p in project["optional-dependencies"][group]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert pins <= set(pip), sorted(pins - set(pip))
    assert "torch==2.13.0" in pip


def test_shipped_weights_are_small_and_half_precision():
    """Every clone downloads the committed weights (and every retrain adds to the history): float16 (but for the
    teachers of recipes.FULL_PRECISION), 59 MiB in all (50 until chapter 10, whose RCG models added 4 MB; 55 until
    chapter 6's diffusion autoencoder, 1.6 MB of the 4 MB its chapter may add)."""
    from safetensors import safe_open

    from diffrep_lib import recipes
    files = sorted(p for p in (ROOT / "diffrep_lib" / "weights").glob("*.safetensors")
                   if p.stem not in recipes.FULL_PRECISION)
    assert sum(p.stat().st_size for p in files) <= 59 * 2**20
    for path in files:
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes <= {"F16", "I64", "BOOL"}, f"{path.name}: {dtypes} (ship weights with zoo.store_weights)"


# ----------------------------------------------------------------- citations, taxonomy links, exercises

BIB_KEYS = set(re.findall(r"@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text()))
CHAPTERS = [nb for nb in NOTEBOOKS if nb.stem[:2].isdigit()]          # numbered chapters; A1 is the appendix


def markdown_of(nb):
    return "\n".join(src(c) for c in cells(nb) if c["cell_type"] == "markdown")


def cited_keys(text):
    return {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}


def test_every_cite_key_resolves():
    pages = [markdown_of(nb) for nb in NOTEBOOKS] + [p.read_text() for p in (ROOT / "book").glob("*.md")]
    unknown = set().union(*(cited_keys(t) for t in pages)) - BIB_KEYS
    assert not unknown, f"{{cite}} keys missing from book/references.bib: {sorted(unknown)}"


def test_every_taxonomy_method_has_a_bib_entry_and_is_cited_where_it_runs():
    from diffrep_lib import survey
    methods = survey.load()
    assert not {m.key for m in methods} - BIB_KEYS
    from docutils.nodes import make_id
    for m in survey.runnable(methods):
        nb = ROOT / f"{m.chapter}.ipynb"
        assert nb.exists(), f"{m.key}: chapter {m.chapter} does not exist"
        assert m.key in cited_keys(markdown_of(nb)), f"{m.chapter} runs {m.name} but never cites {m.key}"
        if m.section:                           # the anchor Sphinx gives the heading (the browser check follows it)
            headings = re.findall(r"^#+ (.+)$", markdown_of(nb), re.M)
            assert m.section in {make_id(h) for h in headings}, f"{m.key}: no heading {m.section} in {m.chapter}"


def test_coverage_agrees_with_the_chapters_present():
    """Every chapter the taxonomy names exists and is in the TOC; every chapter runs something of the map."""
    from diffrep_lib import survey
    named = {m.chapter for m in survey.runnable(survey.load())}
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"file: {c}" in toc for c in named)
    assert {f"notebooks/{nb.stem}" for nb in CHAPTERS} <= named, "a chapter runs no method of the taxonomy"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_three_exercises_with_solutions(nb):
    text = markdown_of(nb)
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    solved = set(re.findall(r"```\{solution(?:-start)?\} ([\w-]+)", text))
    assert len(exercises) >= 3 and set(exercises) <= solved, (exercises, solved)
    assert "Learning objectives" in text
    # at least one solution is code that papermill executes: a code cell between solution-start and -end
    kinds, inside = [], False
    for c in cells(nb):
        s = src(c)
        if c["cell_type"] == "markdown":
            inside = ("{solution-start}" in s and s.rfind("{solution-start}") > s.rfind("{solution-end}"))
        elif inside:
            kinds.append("code")
    assert kinds, "no solution contains an executed code cell"


def test_api_reference_documents_every_module():
    """book/api.md has an automodule for every module of diffrep_lib (not private modules; of the packages'
    __init__s, those that define functions), and for nothing else, so a new module cannot be left out of the API
    reference."""
    documented = re.findall(r"^\.\. automodule::\s*(\S+)", (ROOT / "book" / "api.md").read_text(), re.M)
    lib = ROOT / "diffrep_lib"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in lib.rglob("*.py")
               if p.name != "__init__.py" and not any(part.startswith("_") for part in p.relative_to(lib).parts)}
    modules |= {".".join(p.parent.relative_to(ROOT).parts) for p in lib.glob("*/__init__.py")
                if re.search(r"^def ", p.read_text(), re.M)}             # data, models: functions of their own
    assert len(documented) == len(set(documented)), "a module is documented twice"
    assert set(documented) == modules, {"missing": sorted(modules - set(documented)),
                                        "not a module": sorted(set(documented) - modules)}


def test_library_docstrings_are_valid_restructuredtext():
    """book/api.md renders every public docstring with Sphinx, whose strict build fails on a warning: catch the
    usual ones here in seconds (an unpaired * in `f(*args)` opens emphasis) rather than at the end of make test."""
    import importlib
    import inspect
    import io
    import pkgutil

    import docutils.core

    problems = []
    for info in pkgutil.walk_packages(diffrep_lib.__path__, "diffrep_lib."):
        if info.name.endswith("__main__"):                   # runs the command line on import
            continue
        mod = importlib.import_module(info.name)
        objects = [(info.name, mod)] + [
            (f"{info.name}.{n}", o) for n, o in vars(mod).items()
            if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o))
            and getattr(o, "__module__", None) == info.name]
        for name, obj in objects:
            if not obj.__doc__:
                continue
            out = io.StringIO()
            docutils.core.publish_doctree(inspect.cleandoc(obj.__doc__),
                                          settings_overrides={"warning_stream": out, "report_level": 2})
            problems += [f"{name}: {line}" for line in out.getvalue().splitlines()
                         if "WARNING" in line
                         or ("ERROR" in line and "Unknown interpreted text role" not in line)]   # Sphinx's roles
    assert not problems, "\n".join(problems)
