"""scripts/run_book.py and scripts/nbval_book.py: how many chapters run at once and with how many threads, a
failing chapter that does not stop the others, and the thread count carried from execution to nbval."""
import io
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbval_book  # noqa: E402
import run_book  # noqa: E402


@pytest.mark.parametrize("n, device, jobs, cores, expected", [
    (14, "cpu", None, 2, (2, 1)),       # the book on a 2-core CPU: two chapters, one thread each
    (14, "cpu", None, 8, (2, 4)),
    (1, "cpu", None, 2, (1, 2)),        # one chapter keeps every core
    (14, "cuda", None, 16, (1, 16)),    # chapters would share the GPU
    (14, "cpu", 4, 2, (2, 1)),          # never more chapters than cores
    (3, "cpu", 1, 2, (1, 2)),
])
def test_plan(n, device, jobs, cores, expected):
    assert run_book.plan(n, device, jobs, cores) == expected


def test_a_failing_chapter_is_recorded_and_does_not_stop_the_others(write_notebook, tmp_path, monkeypatch, capsys):
    threads = "import os; print('threads', os.environ['OMP_NUM_THREADS'], profile, seed)"
    write_notebook(tmp_path / "notebooks" / "01_ok.ipynb", threads)
    write_notebook(tmp_path / "notebooks" / "02_fails.ipynb", "raise ValueError('a claim failed')")
    write_notebook(tmp_path / "notebooks" / "03_ok.ipynb", threads)
    monkeypatch.setattr(run_book, "ROOT", tmp_path)
    monkeypatch.setattr(run_book.os, "cpu_count", lambda: 2)
    out = tmp_path / "executed"
    with pytest.raises(RuntimeError, match="1 chapter.*failed: 02_fails"):
        run_book.run("quick", 3, out=out)
    rows = json.loads((out / "record.json").read_text())
    assert [(r["chapter"], r["ok"], r["threads"], r["jobs"], r["seed"]) for r in rows] == [
        ("01_ok", True, 1, 2, 3), ("02_fails", False, 1, 2, 3), ("03_ok", True, 1, 2, 3)]
    assert "a claim failed" in capsys.readouterr().err                # the end of the failing chapter's log
    executed = json.loads((out / "notebooks" / "03_ok.ipynb").read_text())
    assert executed["metadata"]["diffrep"]["threads"] == 1
    assert "threads 1 quick 3" in "".join(executed["cells"][-1]["outputs"][0]["text"])
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "remove-cell" in injected[0]["metadata"]["tags"]
    assert nbval_book.threads_of(out / "notebooks" / "03_ok.ipynb", cores=2) == 1
    assert nbval_book.threads_of(tmp_path / "notebooks" / "01_ok.ipynb", cores=2) == 2    # not run by run_book


def test_unknown_chapters_are_named():
    with pytest.raises(SystemExit, match="unknown chapters \\['99_none'\\]"):
        run_book.chapters(["99_none"])


def test_a_kernel_that_died_while_starting_is_started_once_more_and_nothing_else_is(tmp_path, monkeypatch):
    monkeypatch.setattr(run_book, "SPACING_S", 0.0)
    runs = tmp_path / "runs"
    script = ("import pathlib, sys; p = pathlib.Path(sys.argv[1]); n = len(p.read_text()) if p.exists() else 0; "
              "p.write_text('x' * (n + 1)); print(sys.argv[2] if n == 0 else 'second run'); "
              "sys.exit(1 if n == 0 else 0)")
    for first, expected_runs, expected_code in [(run_book.KERNEL_START_FAILED[0], 2, 0),
                                                ("AssertionError: a claim failed", 1, 1)]:
        runs.unlink(missing_ok=True)
        out = io.StringIO()
        code = run_book.run_process([sys.executable, "-c", script, str(runs), first], dict(os.environ), out)
        assert (code, len(runs.read_text())) == (expected_code, expected_runs)
        assert first in out.getvalue() and ("second run" in out.getvalue()) == (expected_runs == 2)


def test_chapters_start_longest_first_from_the_last_record_else_the_shipped_times(tmp_path):
    names = ["01_a", "02_b", "03_c", "04_d"]
    found = [Path(f"{n}.ipynb") for n in names]
    order = lambda walls: [p.stem for p in run_book.longest_first(found, walls)]
    assert order({"01_a": 10, "02_b": 300, "03_c": 300, "04_d": 50}) == ["02_b", "03_c", "04_d", "01_a"]
    assert order({"01_a": 10, "02_b": 300}) == ["03_c", "04_d", "02_b", "01_a"]     # unknown: first
    assert order({}) == names                                                          # the book's order
    shipped = tmp_path / "walls.json"
    shipped.write_text(json.dumps({"profile": "quick", "walls": {"01_a": 5.0}}))
    out = tmp_path / "executed"
    assert run_book.walls_for("quick", out, shipped) == {"01_a": 5.0}                  # fresh clone
    assert run_book.walls_for("full", out, shipped) == {}                              # other profile
    out.mkdir()
    (out / "record.json").write_text(json.dumps([{"chapter": "02_b", "profile": "quick", "wall_s": 9.0}]))
    assert run_book.walls_for("quick", out, shipped) == {"01_a": 5.0, "02_b": 9.0}     # the last run adds
    (out / "record.json").write_text(json.dumps([{"chapter": "01_a", "profile": "quick", "wall_s": 7.0}]))
    assert run_book.walls_for("quick", out, shipped) == {"01_a": 7.0}                  # ... and wins
    (out / "record.json").write_text("{not json")
    assert run_book.walls_for("quick", out, shipped) == {"01_a": 5.0}


def test_saved_walls_come_only_from_a_full_successful_quick_run(tmp_path):
    stems = [p.stem for p in run_book.chapters()]
    row = lambda stem, **kw: {"chapter": stem, "profile": "quick", "ok": True, "wall_s": 60.0,
                              "date": "2026-12-07T10:00:00", "jobs": 2, "threads": 1, **kw}
    record, shipped = tmp_path / "record.json", tmp_path / "walls.json"
    record.write_text(json.dumps([row(s) for s in stems]))
    saved = run_book.save_walls(record, shipped)
    assert json.loads(shipped.read_text()) == saved and saved["walls"] == {s: 60.0 for s in stems}
    for rows in ([row(s) for s in stems[1:]], [row(stems[0], ok=False)] + [row(s) for s in stems[1:]]):
        record.write_text(json.dumps(rows))
        with pytest.raises(SystemExit, match="not a successful run of every chapter"):
            run_book.save_walls(record, shipped)
