"""What makes the book a public resource, checked: one version, one repository URL and branch (in _config.yml)
that every other mention agrees with, licences, a citation file, every imported package declared, and the
publishing workflow calling the make targets."""
import ast
import re
import tomllib
from pathlib import Path

import yaml

import diffrep_lib

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO, BRANCH = CONFIG["repository"]["url"].rstrip("/"), CONFIG["repository"]["branch"]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CITATION = yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_the_version_has_one_source():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "diffrep_lib.__version__"}
    assert CITATION["version"] == diffrep_lib.__version__


def test_the_repository_and_the_published_book_are_named_once():
    base = CONFIG["html"]["baseurl"]
    assert PROJECT["urls"]["Repository"] == REPO and PROJECT["urls"]["Issues"] == f"{REPO}/issues"
    assert PROJECT["urls"]["Homepage"] == base and CITATION["url"] == base
    assert CITATION["repository-code"] == REPO
    owner, name = REPO.split("github.com/")[1].split("/")
    assert base == f"https://{owner}.github.io/{name}/"                 # GitHub Pages of that repository
    readme = (ROOT / "README.md").read_text()
    for url in set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme)):
        assert url == REPO, f"README names another repository: {url}"


def test_header_buttons_and_pages_publishing_are_configured():
    html = CONFIG["html"]
    assert html["use_repository_button"] and html["use_issues_button"] and html["use_edit_page_button"]
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert "sphinx.ext.githubpages" in CONFIG["sphinx"]["extra_extensions"]          # writes .nojekyll
    assert not (ROOT / "_static").exists(), "Jupyter Book loads every _static/**/*.js: MathJax would load twice"
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert "make test" in runs and "make book" in runs


def test_licences_and_citation():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "CC BY 4.0" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    survey = CITATION["references"][0]
    assert "arXiv:2407.00783" in str(survey["identifiers"]) and survey["authors"][0]["family-names"] == "Fuest"


# import name -> distribution name, where they differ
DISTRIBUTION = {"yaml": "pyyaml", "sklearn": "scikit-learn", "PIL": "pillow", "IPython": "ipython"}
OPTIONAL = {"transformers"}             # Hub encoders only (chapter 9 in Colab); imported inside the function


def test_every_package_the_library_imports_is_declared():
    declared = {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in PROJECT["dependencies"]}
    std = __import__("sys").stdlib_module_names
    missing = set()
    for path in (ROOT / "diffrep_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in std or top in ("diffrep_lib", "__future__") or top in OPTIONAL:
                    continue
                if DISTRIBUTION.get(top, top).lower() not in declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, sorted(missing)
