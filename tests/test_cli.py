"""The `diffrep` command line (diffrep_lib/cli/), called in-process through `main(argv)`: help, the zoo's list,
verify and train on a tiny toy recipe in a temporary weights folder and cache, `run` with its clear errors and one
papermill run of a toy notebook, `record`, and the installed entry point."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from diffrep_lib import cli, recipes, zoo

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `diffrep argv...`."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, options", [
    ([], ["zoo", "run", "record", "--version"]),
    (["zoo"], ["list", "verify", "train"]),
    (["zoo", "list"], ["shipped and verified", "stale", "record only", "extra"]),
    (["zoo", "verify"], ["NAME"]),
    (["zoo", "train"], ["NAME", "--profile", "--seed", "--ship"]),
    (["run"], ["CHAPTER", "--profile", "--seed", "--out", 'pip install "diffrep_lib[book]"']),
    (["record"], ["--file", "record.json"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("zoo", "run", "record") else None)
def test_help_of_every_command_names_its_options(capsys, argv, options):
    code, out, err = run(capsys, *argv, "--help")
    assert code == 0 and not err
    for option in options:
        assert option in out, option


def test_usage_errors_are_one_line_with_exit_code_2(capsys):
    for argv in ([], ["zoo"], ["zoo", "train"], ["zoo", "train", "unet_fmnist", "--seed", "-1"],
                 ["run", "04", "--profile", "huge"], ["frobnicate"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "error" in err, argv
    code, _, err = run(capsys, "zoo", "train", "resnet9000")
    assert code == 2 and "unknown zoo model 'resnet9000'" in err and "unet_fmnist" in err
    code, _, err = run(capsys, "zoo", "train", "unet_fmnist", "--ship", "--seed", "1")
    assert code == 2 and "--ship retrains the shipped weights" in err


def test_zoo_list_gives_every_shipped_recipe_its_status(capsys, monkeypatch):
    """The real shipped weights, for a few recipes: one of each status (the full list verifies all 24 models)."""
    names = ("unet_fmnist", "simclr_fmnist", "cluster_unet_fmnist_k50", "dit_ablation_adaln_zero")
    monkeypatch.setattr(recipes, "RECIPES", {n: recipes.RECIPES[n] for n in names})
    code, out, err = run(capsys, "zoo", "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in names}
    assert set(lines) == set(names)
    assert "shipped and verified" in lines["unet_fmnist"] and "steps" in lines["unet_fmnist"]
    assert "shipped and verified (extra)" in lines["cluster_unet_fmnist_k50"]
    assert "record only" in lines["dit_ablation_adaln_zero"]


def test_zoo_list_says_what_is_stale_and_what_to_run(capsys, cache, shipped_dir, tiny):
    zoo.ship("tiny_toy")
    code, out, _ = run(capsys, "zoo", "list")
    assert code == 0
    line = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "shipped and verified" in line["tiny_toy"]
    assert "stale" in line["unet_fmnist"] and "no manifest entry" in line["unet_fmnist"] \
        and "diffrep zoo train unet_fmnist --ship" in line["unet_fmnist"]


def test_zoo_train_ship_then_verify_passes_and_a_flipped_byte_fails(capsys, cache, shipped_dir, tiny):
    code, out, _ = run(capsys, "zoo", "train", "tiny_toy", "--ship")
    assert code == 0 and "30 steps" in out and str(shipped_dir / "tiny_toy.safetensors") in out
    assert str(shipped_dir / "manifest.json") in out
    code, out, _ = run(capsys, "zoo", "verify", "tiny_toy")
    assert code == 0 and "verified" in out
    path = shipped_dir / "tiny_toy.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    code, out, err = run(capsys, "zoo", "verify", "tiny_toy")
    assert code == 1 and "sha256" in out and "diffrep zoo train tiny_toy --ship" in out and "1 problem" in err
    code, _, err = run(capsys, "zoo", "verify", "resnet9000")
    assert code == 2 and "unknown shipped recipe" in err


def test_zoo_train_into_the_cache_says_where(capsys, cache, shipped_dir, tiny):
    code, out, _ = run(capsys, "zoo", "train", "tiny_toy", "--profile", "full")
    want = zoo.cached_path(recipes.get("tiny_toy", "full"), "full")
    assert code == 0 and want.exists() and f"trained in the cache: {want}" in out and "40 steps" in out
    code, out, _ = run(capsys, "zoo", "train", "tiny_toy", "--profile", "full")       # there already
    assert code == 0 and f"found in the cache: {want}" in out
    code, out, _ = run(capsys, "zoo", "train", "tiny_toy", "--seed", "1")              # quick, another seed
    assert code == 0 and zoo.cached_path(recipes.get("tiny_toy", "quick", 1), "quick").exists()
    # quick, seed 0 is the shipped model: not trained without --ship; unshipped, the error names the fix
    code, _, err = run(capsys, "zoo", "train", "tiny_toy")
    assert code == 1 and "no shipped record" in err and "diffrep zoo train tiny_toy --ship" in err
    zoo.ship("tiny_toy")
    code, out, _ = run(capsys, "zoo", "train", "tiny_toy")
    assert code == 0 and "nothing trained" in out and "--ship" in out


def test_retrain_command_works_for_pip_users_and_in_a_clone():
    assert zoo.retrain_command("unet_fmnist") == "diffrep zoo train unet_fmnist --ship (in a clone: make zoo)"
    assert "make zoo-extras" in zoo.retrain_command("repa_dit_fmnist_deep")


# --- diffrep run and diffrep record ---------------------------------------------------------------------------

def test_run_without_a_notebooks_folder_says_to_clone(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "run", "04")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "no notebooks/ folder" in err and "git clone https://github.com/diffrep/diffrep" in err


def test_run_without_papermill_says_what_to_install(write_notebook, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_notebook(tmp_path / "notebooks" / "04_activations.ipynb", "pass")
    monkeypatch.setattr(cli.chapters, "papermill_available", lambda: False)
    code, _, err = run(capsys, "run", "04")
    assert code == 1 and 'pip install "diffrep_lib[book]"' in err and len(err.strip().splitlines()) == 1


def test_chapters_are_found_by_number_stem_or_path(write_notebook, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for stem in ("01_foundations", "04_activations", "A1_survey_map"):
        write_notebook(tmp_path / "notebooks" / f"{stem}.ipynb", "pass")
    found = lambda c: cli.find_chapter(c).stem
    assert found("04") == found("4") == found("04_activations") == "04_activations"
    assert found("a1") == "A1_survey_map" and found("notebooks/01_foundations.ipynb") == "01_foundations"
    code, _, err = run(capsys, "run", "05")
    assert code == 2 and "unknown chapter '05'" in err
    assert "01_foundations, 04_activations, A1_survey_map" in err
    code, _, err = run(capsys, "run", "missing/x.ipynb")
    assert code == 2 and "no notebook at missing/x.ipynb" in err


def test_the_repository_is_pyprojects():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cli.REPOSITORY == project["urls"]["Repository"]
    assert project["scripts"]["diffrep"] == "diffrep_lib.cli:main"


def test_record_without_a_record_says_what_to_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "record")
    assert code == 1 and "no execution record at _build/executed/record.json" in err and "diffrep run" in err


@pytest.mark.skipif(not cli.papermill_available(), reason="papermill is not installed")
def test_run_executes_a_chapter_with_its_parameters_and_records_it(write_notebook, capsys, tmp_path, monkeypatch):
    """One papermill run of a toy chapter: parameters injected (the cell hidden from the book), the claims it logs
    in the record, which `diffrep record` prints; a failing chapter is one line naming its error."""
    monkeypatch.chdir(tmp_path)
    write_notebook(tmp_path / "notebooks" / "07_toy.ipynb",
             "import json, os, pathlib\n"
             "pathlib.Path('seen.json').write_text(json.dumps([profile, seed]))\n"
             "with open(os.environ['DIFFREP_CLAIMS_LOG'], 'a') as f:\n"
             "    f.write(json.dumps({'statement': 's', 'holds': True, 'checked': True}) + '\\n')\n"
             "assert seed != 3, 'boom at seed 3'")
    code, out, err = run(capsys, "run", "07", "--profile", "quick", "--seed", "2")
    assert code == 0, err
    assert json.loads((tmp_path / "notebooks" / "seen.json").read_text()) == ["quick", 2]   # cwd: the notebook's
    executed = json.loads((tmp_path / "_build" / "executed" / "notebooks" / "07_toy.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0]["metadata"]["tags"]
    assert "07_toy: ok" in out and "(1/1 claims held)" in out
    (row,) = json.loads((tmp_path / "_build" / "executed" / "record.json").read_text())
    assert row["chapter"] == "07_toy" and row["seed"] == 2 and row["ok"] and len(row["claims"]) == 1
    code, out, _ = run(capsys, "record")
    assert code == 0 and "07_toy" in out and "1/1" in out and "quick" in out

    code, out, err = run(capsys, "run", "07", "--profile", "quick", "--seed", "3", "--out", "elsewhere/nb")
    assert code == 1 and "07_toy failed" in err and "boom at seed 3" in err and "07_toy: FAILED" in out
    assert len(err.strip().splitlines()) == 2        # the "executing" line, then the one-line error
    (row,) = json.loads((tmp_path / "elsewhere" / "record.json").read_text())
    assert not row["ok"] and row["seed"] == 3


ENTRY = Path(sys.executable).parent / "diffrep"


@pytest.mark.skipif(not ENTRY.exists(), reason="the console script is installed by `pip install -e .`")
def test_the_installed_entry_point_runs(tmp_path):
    done = subprocess.run([str(ENTRY), "run", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "CHAPTER" in done.stdout
    done = subprocess.run([str(ENTRY), "record"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("diffrep record: no execution record")
