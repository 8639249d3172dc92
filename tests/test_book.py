"""The book's own conventions: layout, notebooks stored without outputs, parameters cells, claim cells,
Colab badges and install cells that use the repository URL of _config.yml, pins that agree."""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO = CONFIG["repository"]["url"].rstrip("/")


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
    colab = f"https://colab.research.google.com/github/{REPO.split('github.com/')[1]}/blob/main/notebooks/{nb.name}"
    assert colab in first_md, "Colab badge must point at this notebook in the configured repository"
    install = next(src(c) for c in code if "google.colab" in src(c))
    assert f"git+{REPO}" in install and "torch" not in install.split("pip")[1].split("]")[0]
    assert "Learning objectives" in first_md and "Prerequisites" in first_md and "Run time" in first_md


def test_environment_yml_has_the_same_pins_as_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {p for group in ("pinned", "book", "test") for p in project["optional-dependencies"][group]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert pins <= set(pip), sorted(pins - set(pip))
    assert "torch==2.13.0" in pip


def test_shipped_weights_are_small():
    total = sum(p.stat().st_size for p in (ROOT / "diffrep_lib" / "weights").glob("*.safetensors"))
    assert total <= 30 * 2**20
