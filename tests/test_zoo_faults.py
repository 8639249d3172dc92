"""Faults around the zoo's files: an interrupted training run, two processes training the same model, a full disk
during a save, and altered or corrupt cached files. None of them may leave a partial file in place, return a wrong
model, or lose the previous good file."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffrep_lib import recipes, zoo
from diffrep_lib.support import runtime

sys.path.insert(0, str(Path(__file__).parent))
from zoo_worker import toy  # noqa: E402

WORKER = Path(__file__).parent / "zoo_worker.py"
LONG = 200_000          # steps: long enough to be killed mid-training


@pytest.fixture
def fault_toy(monkeypatch):
    monkeypatch.setitem(recipes.RECIPES, "fault_toy", {"quick": toy(30), "full": toy(30)})


def worker(action: str, steps: int, cache: Path, *extra, progress: str = "0") -> subprocess.Popen:
    env = {**os.environ, "DIFFREP_CACHE": str(cache), "DIFFREP_PROGRESS": progress, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), action, str(steps), *map(str, extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_training(proc: subprocess.Popen, seconds: float = 4.0) -> None:
    time.sleep(seconds)                                 # imports take ~2 s; then it trains for minutes
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".lock")}


def test_a_killed_make_zoo_ships_nothing_partial_and_the_rerun_completes(tmp_path):
    weights, cache = tmp_path / "weights", tmp_path / "cache"
    first = worker("ship", 30, cache, weights)
    assert first.wait() == 0, first.communicate()
    before = files(weights)
    assert set(before) == {"fault_toy.safetensors", "manifest.json"}
    killed = worker("ship", LONG, cache, weights)          # a changed recipe, retrained and killed mid-recipe
    kill_when_training(killed)
    assert files(weights) == before                        # the shipped file and manifest are untouched
    assert len(list(cache.rglob("*.safetensors"))) == 1          # the first run's checkpoint; none of the killed
    assert not list(tmp_path.rglob("*.tmp"))
    again = worker("ship", 40, cache, weights)             # the next run trains the recipe cleanly from the start
    out, err = again.communicate()
    assert again.returncode == 0, err
    manifest = json.loads((weights / "manifest.json").read_text())
    assert manifest["entries"]["fault_toy"]["steps"] == 40
    assert manifest["entries"]["fault_toy"]["sha256"] == zoo.store.sha256(weights / "fault_toy.safetensors")


def test_a_killed_training_run_leaves_no_cached_model_and_the_next_call_trains(tmp_path):
    cache = tmp_path / "cache"
    killed = worker("get", LONG, cache)
    kill_when_training(killed)
    assert not list(cache.rglob("*.safetensors")) and not list(cache.rglob("*.tmp"))
    done = worker("get", 30, cache)
    out, err = done.communicate()
    assert done.returncode == 0 and "weight-sum" in out, err


def test_two_processes_asking_for_the_same_model_train_it_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [worker("get", 600, cache, progress="1") for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(err.count("zoo: training fault_toy") for _, err in outs) == 1         # one trained, one waited
    sums = [o.split("weight-sum")[1].strip() for o, _ in outs]
    assert sums[0] == sums[1]                                            # the same model in both processes
    (weights,) = (cache / "zoo").glob("fault_toy-full-*.safetensors")
    record = json.loads(weights.with_suffix(".json").read_text())
    assert record["sha256"] == zoo.store.sha256(weights)               # the record belongs to the file
    assert not list(cache.rglob("*.tmp"))


def test_a_full_disk_during_a_save_keeps_the_previous_file(cache, fault_toy, request):
    zoo.get("fault_toy", "full")
    path = zoo.cached_path(recipes.get("fault_toy", "full"), "full")
    record = path.with_suffix(".json")
    good, text = path.read_bytes(), record.read_text()
    request.getfixturevalue("full_disk")                                  # from here on, the disk is full
    with pytest.raises(OSError, match="No space left"):
        zoo.store.atomic_save({"w": torch.zeros(3)}, path)
    with pytest.raises(OSError, match="No space left"):
        zoo.store.atomic_write_text(record, "{}")
    assert path.read_bytes() == good and record.read_text() == text
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_flipped_byte_in_a_cached_model_is_caught_and_retrained(cache, fault_toy):
    model = zoo.get("fault_toy", "full")
    path = zoo.cached_path(recipes.get("fault_toy", "full"), "full")
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x01                                         # one bit of one weight: still a loadable file
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match=f"cached model {path}: the file does not match the sha256"):
        again = zoo.get("fault_toy", "full")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_a_corrupt_cached_record_is_reported_and_rebuilt(cache, fault_toy):
    zoo.get("fault_toy", "full")
    record = zoo.cached_path(recipes.get("fault_toy", "full"), "full").with_suffix(".json")
    record.write_text('{"steps": 30, "metr')                        # cut off mid-write by another tool
    with pytest.warns(UserWarning, match=f"its record {record} or the file is unreadable .*JSONDecodeError"):
        rec = zoo.record("fault_toy", "full")
    assert rec["steps"] == 30 and json.loads(record.read_text())["sha256"]


def test_corrupt_cached_and_checkpoint_files_are_both_named_and_retrained(cache, fault_toy):
    r = recipes.get("fault_toy", "full")
    zoo.get("fault_toy", "full")
    path, ckpt = zoo.cached_path(r, "full"), zoo.checkpoint_path(r)
    path.write_bytes(b"garbage")
    ckpt.write_bytes(b"garbage too")
    with pytest.warns(UserWarning) as seen:
        zoo.get("fault_toy", "full")
    said = " | ".join(str(w.message) for w in seen)
    assert str(path) in said and str(ckpt) in said and "training again" in said
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == zoo.store.sha256(path)


def test_a_record_only_recipe_says_it_trains(cache, fault_toy, monkeypatch, tmp_path):
    monkeypatch.setattr(recipes, "RECORD_ONLY", recipes.RECORD_ONLY | {"fault_toy"})
    with pytest.warns(UserWarning, match="fault_toy ships only its training record, not its weights: training it"):
        zoo.get("fault_toy", "quick")
