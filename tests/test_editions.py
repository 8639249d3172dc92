"""The student edition (make book EDITION=student): scripts/build_book.py's strip_solutions cuts every solution
from a chapter and keeps the exercises and every other cell as they are. No jupyter-book build here."""
import copy
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(nb for nb in (ROOT / "notebooks").glob("*.ipynb") if nb.stem[:2].isdigit())

spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def code(text):
    return {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["keep"]},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": ["out\n"]}],
            "source": text.splitlines(keepends=True)}


def src(cell):
    return "".join(cell["source"])


def notebook(*cells):
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4,
            "nbformat_minor": 5}


EX1 = "```{exercise} One\n:label: ex-one\n\nDerive it.\n```"
EX2 = "```{exercise} Two\n:label: ex-two\n\nRun it.\n```"
EX3 = "::::{exercise} Three\n:label: ex-three\n\nMeasure it.\n::::"
START1 = "```{solution-start} ex-one\n:class: dropdown\n```"
START2 = "```{solution-start} ex-two\n:class: dropdown\n```"
END = "```{solution-end}\n```"
SYNTHETIC = notebook(
    md("# Title\n\nIntro text."),
    code("x = 1"),
    md(f"## Exercises\n\n{EX1}\n\n{START1}\n\nSECRET derivation, first part."),
    code("SECRET_CODE = 2"),
    md("SECRET derivation, second part."),
    {"cell_type": "raw", "metadata": {}, "source": ["SECRET raw"]},
    md(f"{END}\n\n{EX2}\n\n{START2}\n\nSECRET in the cell of its start."),
    code("SECRET_CODE_TOO = 3"),
    md(END),
    md(f"{EX3}\n\n````{{solution}} ex-three\n:class: dropdown\n\nSECRET plain.\n\n```python\nSECRET = 4\n```\n````"
       "\n\nAfter the plain solution."),
    code("y = 2"),
    md("Closing words."),
)


def test_synthetic_notebook():
    before = copy.deepcopy(SYNTHETIC)
    out = build_book.strip_solutions(SYNTHETIC)
    assert SYNTHETIC == before                                                  # the input is left as it is
    text = json.dumps(out)
    assert "SECRET" not in text and "{solution" not in text
    assert [src(c) for c in out["cells"]] == [
        "# Title\n\nIntro text.", "x = 1", f"## Exercises\n\n{EX1}", EX2, f"{EX3}\n\nAfter the plain solution.",
        "y = 2", "Closing words."]
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "code", "markdown", "markdown", "markdown",
                                                      "code", "markdown"]
    # the cells outside the solutions are kept whole: outputs, metadata, execution counts
    for i, j in [(0, 0), (1, 1), (10, 5), (11, 6)]:
        assert out["cells"][j] == SYNTHETIC["cells"][i]
    assert out["metadata"] == SYNTHETIC["metadata"] and out["nbformat"] == 4


def test_a_notebook_without_solutions_is_unchanged():
    nb = notebook(md("# A\n\n```{exercise} x\n:label: e\n\nNo solution given.\n```"), code("print(1)"))
    assert build_book.strip_solutions(nb) == nb


@pytest.mark.parametrize("cells", [
    [md(START1), code("1")],                               # never ends
    [md(END)],                                             # ends without a start
    [md(START1), md(START2), md(END), md(END)],            # nested
], ids=["no end", "no start", "nested"])
def test_unbalanced_directives_are_an_error(cells):
    with pytest.raises(ValueError):
        build_book.strip_solutions(notebook(*cells), "bad.ipynb")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_real_chapter(path, tmp_path):
    copy_ = tmp_path / path.name
    shutil.copy2(path, copy_)
    nb = json.loads(copy_.read_text())
    original = copy.deepcopy(nb)
    out = build_book.strip_solutions(nb, path.name)
    assert nb == original and path.read_bytes() == copy_.read_bytes()            # nothing changed in place

    def labels(cells):
        return re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", "\n".join(src(c) for c in cells))

    assert len(labels(out["cells"])) >= 3 and labels(out["cells"]) == labels(nb["cells"])
    assert not any(re.search(r"\{solution(-start|-end)?\}", src(c)) for c in out["cells"])

    # the cells strictly inside a solution (between the cell of its start and the cell of its end) are gone,
    # code cells included; every cell before the first solution, and every code cell outside, is kept as it is
    inside, between, first = False, [], None
    for i, c in enumerate(nb["cells"]):
        s = src(c)
        if "{solution-start}" in s:
            first = i if first is None else first
        if inside and "{solution-end}" not in s:
            between.append(c)
        if c["cell_type"] == "markdown" and ("{solution-start}" in s or "{solution-end}" in s):
            inside = s.rfind("{solution-start}") > s.rfind("{solution-end}")
    assert first is not None and any(c["cell_type"] == "code" for c in between)
    assert not any(c in out["cells"] for c in between)
    assert out["cells"][:first] == nb["cells"][:first]
    outside_code = [c for c in nb["cells"] if c["cell_type"] == "code" and c not in between]
    assert [c for c in out["cells"] if c["cell_type"] == "code"] == outside_code
    # and no sentence of a solution's Markdown survives
    solution_text = [line for c in between if c["cell_type"] == "markdown" for line in src(c).splitlines()
                     if len(line) > 40]
    kept = "\n".join(src(c) for c in out["cells"])
    assert not any(line in kept for line in solution_text)


def test_strip_tree_stages_a_copy(tmp_path):
    """What build_book.py does for the student edition: strip a staged copy, the original stays as it is."""
    staged = tmp_path / "notebooks"
    staged.mkdir()
    shutil.copy2(CHAPTERS[0], staged / CHAPTERS[0].name)
    before = CHAPTERS[0].read_bytes()
    solutions, cells = build_book.strip_tree(staged)
    assert solutions >= 3 and cells >= 3
    assert CHAPTERS[0].read_bytes() == before
    assert "{solution" not in (staged / CHAPTERS[0].name).read_text()
    assert build_book.strip_tree(staged) == (0, 0)                              # idempotent
