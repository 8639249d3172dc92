"""The model zoo: cache hit and miss, recipe invalidation, manifest verification, corrupt-file recovery,
atomic writes, and a smoke training of every recipe."""
import dataclasses
import json

import pytest
import torch

from diffrep_lib import recipes, registry, training, zoo
from diffrep_lib.zoo import golden
from conftest import TINY



def no_training(*a, **k):
    raise AssertionError("the zoo trained although the weights were available")


def test_cache_miss_trains_then_hits(cache, tiny, monkeypatch):
    m1 = zoo.get("tiny_toy", "full")
    files = sorted(p.name for p in (cache / "zoo").iterdir() if p.is_file() and not p.name.startswith("."))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    record = json.loads((cache / "zoo" / files[0]).read_text())
    assert record["recipe_hash"] == recipes.recipe_hash(recipes.get("tiny_toy", "full")) and record["steps"] == 40
    monkeypatch.setattr(zoo.build, "fit", no_training)
    m2 = zoo.get("tiny_toy", "full")
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_changed_recipe_is_a_miss(cache, tiny, monkeypatch):
    zoo.get("tiny_toy", "full")
    monkeypatch.setitem(recipes.RECIPES, "tiny_toy", {"full": dataclasses.replace(TINY, steps=41)})
    zoo.get("tiny_toy", "full")
    assert len(list((cache / "zoo").glob("*.safetensors"))) == 2


def test_other_seed_is_a_separate_model(cache, tiny):
    a, b = zoo.get("tiny_toy", "full", seed=0), zoo.get("tiny_toy", "full", seed=1)
    assert not torch.equal(a.inp.weight, b.inp.weight)


def test_corrupt_cache_file_is_reported_and_retrained(cache, tiny):
    zoo.get("tiny_toy", "full")
    path = zoo.cached_path(recipes.get("tiny_toy", "full"), "full")
    path.write_bytes(path.read_bytes()[:100])                       # a truncated checkpoint
    with pytest.warns(UserWarning, match="cached model .*does not match the sha256 of its record.*training it again"):
        zoo.get("tiny_toy", "full")
    zoo.get("tiny_toy", "full")                                     # and now it is whole again
    assert path.stat().st_size > 1000


def test_a_crash_leaves_no_checkpoint(cache, tiny, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(training, "train", crash)
    with pytest.raises(KeyboardInterrupt):
        zoo.get("tiny_toy", "full")
    assert not list(cache.rglob("*.safetensors")) and not list(cache.rglob("*.tmp"))


def test_weights_trained_before_a_failed_evaluation_are_not_trained_again(cache, tiny, monkeypatch):
    """No lost work: train() saves the trained weights before evaluating them; if the evaluation (or anything
    after it) fails, the next call picks the weights up instead of training again."""
    def broken(*a, **k):
        raise RuntimeError("evaluation failed")
    evaluate = zoo.build.evaluate
    monkeypatch.setattr(zoo.build, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        zoo.fit(TINY)
    assert zoo.checkpoint_path(TINY).exists()
    monkeypatch.setattr(zoo.build, "evaluate", evaluate)
    monkeypatch.setattr(training, "train", no_training)
    model, rec = zoo.fit(TINY)
    assert rec["steps"] == 30 and rec["loss_curve"]["step"][-1] == 30 and "test_denoise_loss" in rec["metrics"]


def test_ship_and_verify_the_manifest(shipped_dir, tiny, monkeypatch):
    record = zoo.ship("tiny_toy")
    for key in ("recipe_hash", "config", "seed", "steps", "wall_s", "device", "date", "metrics", "sha256", "golden"):
        assert key in record
    assert zoo.verify(["tiny_toy"]) == [] and zoo.stale(["tiny_toy"]) == []
    monkeypatch.setattr(zoo.build, "fit", no_training)
    zoo.get("tiny_toy", "quick")                                   # shipped: loads without training

    # a changed recipe is reported with what to run
    monkeypatch.setitem(recipes.RECIPES, "tiny_toy", {"quick": dataclasses.replace(TINY, lr=5e-3)})
    assert zoo.stale(["tiny_toy"]) == ["tiny_toy"]
    (problem,) = zoo.verify(["tiny_toy"])
    assert "recipe tiny_toy changed" in problem and "make zoo" in problem
    with pytest.raises(zoo.ZooError, match="make zoo"):
        zoo.get("tiny_toy", "quick")


def test_altered_weights_and_changed_behaviour_are_caught(shipped_dir, tiny):
    zoo.ship("tiny_toy")
    manifest = json.loads(zoo.store.MANIFEST.read_text())
    manifest["entries"]["tiny_toy"]["golden"][0] += 0.01           # as if today's code computed differently
    zoo.store.MANIFEST.write_text(json.dumps(manifest))
    (problem,) = zoo.verify(["tiny_toy"])
    assert "golden output" in problem
    path = shipped_dir / "tiny_toy.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    (problem,) = zoo.verify(["tiny_toy"])
    assert "sha256" in problem and "make zoo" in problem


def test_unknown_names_are_clear_errors():
    with pytest.raises(zoo.ZooError, match="name: got 'resnet9000' \\(unknown zoo model\\); the zoo has"):
        recipes.get("resnet9000")
    with pytest.raises(zoo.ZooError, match="seed: got -1 .*; pass a training seed >= 0"):
        zoo.get("unet_fmnist", "quick", seed=-1)
    with pytest.raises(ValueError, match="unknown profile"):
        zoo.get("unet_fmnist", "huge")


def test_shipped_weights_verify():
    """Every shipped quick model: recipe hash, sha256, and today's code reproducing its golden output."""
    assert zoo.verify() == []


def test_record_only_recipes_ship_their_record_but_no_weights(shipped_dir, tiny, monkeypatch):
    monkeypatch.setattr(recipes, "RECORD_ONLY", recipes.RECORD_ONLY | {"tiny_toy"})
    zoo.ship("tiny_toy")
    assert not (shipped_dir / "tiny_toy.safetensors").exists()
    assert zoo.stale(["tiny_toy"]) == [] and zoo.verify(["tiny_toy"]) == []
    monkeypatch.setattr(zoo.build, "fit", no_training)
    rec = zoo.record("tiny_toy", "quick")
    assert rec["steps"] == 30 and rec["loss_curve"]["step"][-1] == 30


def test_model_id_changes_when_shipped_weights_change(shipped_dir, tiny):
    zoo.ship("tiny_toy")
    before = zoo.model_id("tiny_toy", "quick")
    manifest = json.loads(zoo.store.MANIFEST.read_text())
    manifest["entries"]["tiny_toy"]["sha256"] = "0" * 64            # re-shipped from the same recipe
    zoo.store.MANIFEST.write_text(json.dumps(manifest))
    assert zoo.model_id("tiny_toy", "quick") != before              # memoised results of the old weights are not reused


def test_shipped_weights_are_half_precision_and_verify_against_their_golden_output(shipped_dir, tiny, monkeypatch):
    rec = zoo.ship("tiny_toy")
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(str(shipped_dir / "tiny_toy.safetensors")).values()} == {torch.float16}
    assert rec["weights_dtype"] == "float16" and zoo.verify(["tiny_toy"]) == []
    model = zoo.get("tiny_toy", "quick")                       # used in float32, from the rounded weights
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_record_of_an_unshipped_model_trains_once_and_is_cached(cache, tiny, monkeypatch):
    rec = zoo.record("tiny_toy", "full", seed=1)
    assert rec["seed"] == 1 and rec["steps"] == 40
    monkeypatch.setattr(zoo.build, "fit", no_training)
    assert zoo.record("tiny_toy", "full", seed=1) == rec


def test_a_short_run_repeats_the_first_steps_of_a_long_one(tiny):
    """Why ch. 2's ablation arms can be compared step for step: training does not depend on the total steps."""
    from diffrep_lib.models import build
    curves = []
    for steps in (100, 200):
        r = dataclasses.replace(TINY, steps=steps, warmup=20)
        torch.manual_seed(r.seed)
        _, hist = training.train(r, build(r.model), None, None, device="cpu", log_every=25,
                                 sample_batch=lambda n, g: __import__("diffrep_lib").data.toy2d.sample("8gaussians", n, generator=g))
        curves.append(hist["loss"])
    assert curves[0] == curves[1][:4]


def test_checkpoint_curve_is_recorded_and_kept_out_of_the_training_time(cache, tiny, monkeypatch):
    """A recipe with curve_every gets its checkpoint evaluations in the record (ch. 12's curves), with their wall
    time apart from the training time."""
    import time

    def fake_point(r):
        def point(step, model):
            assert not model.training                          # evaluated in eval mode
            time.sleep(0.3)
            return {"fid": 100.0 / step}
        return point
    monkeypatch.setitem(registry.METHODS, "denoise", dataclasses.replace(registry.METHODS["denoise"], curve=fake_point))
    t0 = time.perf_counter()
    _, rec = zoo.fit(dataclasses.replace(TINY, curve_every=10))
    elapsed = time.perf_counter() - t0
    assert [p["step"] for p in rec["curve"]] == [10, 20, 30] and rec["curve"][0]["fid"] == 10.0
    # the training time leaves the curve's 0.9 s out, however loaded the machine (0.15 s: both are rounded to 0.1 s)
    assert rec["curve_s"] >= 0.9 and rec["wall_s"] <= elapsed - rec["curve_s"] + 0.15


def test_a_diverging_run_stops_with_the_steps_where_the_loss_broke(tiny):
    """Losses are read once per log window (no device sync per step); a non-finite loss still stops training,
    naming the window, instead of writing a checkpoint of NaNs."""
    from diffrep_lib.models import build
    net = build(TINY.model)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"within steps 1-10"):
        training.train(TINY, net, None, None, device="cpu", log_every=10,
                       sample_batch=lambda n, g: __import__("diffrep_lib").data.toy2d.sample("8gaussians", n, generator=g))


def test_ema_update_is_the_per_parameter_lerp():
    """The fused EMA update (one foreach call) equals lerping every parameter and copying the buffers."""
    torch.manual_seed(0)
    model, ema = torch.nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    model.weight.data.normal_(); model.running_mean.normal_()
    expected = [pe + (1 - 0.5) * (pm - pe) for pe, pm in zip(ema.parameters(), model.parameters())]
    training.ema_update(ema, model, step=8, decay=0.999)           # warm-up: d = min(0.999, 9 / 18) = 0.5
    for got, want in zip(ema.parameters(), expected):
        assert torch.allclose(got, want)
    assert torch.equal(ema.running_mean, model.running_mean)


def _family(model) -> tuple:
    """An architecture up to its sizes: the config's class and its non-numeric fields (a switch such as U-ViT's
    skips or the DiT's initialisation stays), and whether it takes a condition id."""
    sizes = lambda v: not isinstance(v, bool) and isinstance(v, (int, float, tuple))
    fields = tuple((f.name, getattr(model, f.name)) for f in dataclasses.fields(model)
                   if not sizes(getattr(model, f.name)))
    return type(model).__name__, fields, bool(getattr(model, "num_classes", None))


# one smoke run per distinct (architecture family, task, data): the ablations' first arms repeat their main recipe's
# model, the extras (ch. 9's k = 50, 200; ch. 12's sweep) and the controls of ch. 9 (pixel and random ids) repeat
# a core recipe's with other cluster counts, condition sources or REPA settings (the conditions are tested on their
# own), and ch. 6's l-DAE recipes differ in the latent's size d only (the tokenizer's d is tested in test_ldae)
def _smoke(names):
    seen, out = set(), []
    for n in sorted(names, key=lambda n: (n in recipes.RECORD_ONLY, len(n), n)):
        r = recipes.get(n)
        if (key := (_family(r.model), r.task, r.data, r.prediction)) not in seen:
            seen.add(key)
            out.append(n)
    return sorted(out)


SMOKE = _smoke(recipes.CORE)


@pytest.mark.parametrize("name", SMOKE)
def test_every_recipe_smoke_trains(name, monkeypatch):
    """A few steps of each recipe on real data: the training path runs and the loss falls."""
    r = recipes.get(name)
    small = {"pairs": 512, "pair_steps": 4}     # a method's own data (reflow's pairs): a few are enough here
    r = dataclasses.replace(r, steps=30, warmup=0,                       # the recipe's own batch size
                            options=tuple((k, small.get(k, v)) for k, v in r.options))
    x, y, sample_batch = zoo.training_data(r)
    if x is not None:
        x, y = x[:512], (y[:512] if y is not None else None)
    _, hist = training.train(r, zoo.build_model(r, for_training=True), x, y, device="cpu", log_every=10,
                             sample_batch=sample_batch)
    # mean of steps 21-30 below the mean of steps 1-10 (for the v-prediction toy only by ~0.6%: its loss floor,
    # about 1.55, lies close to where an untrained network starts; the others by 13-87%)
    assert hist["loss"][-1] < hist["loss"][0]


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_full_recipe_builds_and_runs_a_forward_pass(name):
    """The GPU recipes are not trained in CI; their models must at least build and accept the recipe's inputs."""
    from diffrep_lib.models import build
    r = recipes.get(name, "full")
    x, t, y = golden.golden_input(r, n=2)
    net = build(r.model).eval()
    with torch.no_grad():
        out = net(x) if r.task == "classify" else net(x, t) if r.task == "classify_noisy" or y is None else net(x, t, y)
    assert torch.isfinite(out).all()


def _zoo_script():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("zoo_script", Path(__file__).parents[1] / "scripts" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_zoo_trains_teachers_in_an_earlier_wave():
    waves = _zoo_script().waves(["repa_dit_fmnist", "cluster_unet_fmnist", "simclr_fmnist", "unet_fmnist"])
    assert waves[0] == ["unet_fmnist", "simclr_fmnist"]                 # longest first
    assert sorted(waves[1]) == ["cluster_unet_fmnist", "repa_dit_fmnist"]
    assert _zoo_script().waves(["repa_dit_fmnist"]) == [["repa_dit_fmnist"]]   # a fresh teacher is not waited for


def test_make_zoo_arguments():
    parse = _zoo_script().parse
    args = parse(["--seed", "1", "--seed", "2", "dit_fmnist", "repa_dit_fmnist"])
    assert args.seed == [1, 2] and args.names == ["dit_fmnist", "repa_dit_fmnist"]
    assert parse([]).seed == [0] and parse([]).jobs == 2
    with pytest.raises(SystemExit):
        parse(["--seed", "1"])                          # other seeds are trained only for named recipes


def test_make_zoo_leaves_the_extras_to_make_zoo_extras(monkeypatch):
    script = _zoo_script()
    out_of_date = ("cluster_unet_fmnist_k50", "repa_dit_fmnist_l1", "unet_fmnist")
    monkeypatch.setattr(zoo, "stale", lambda names: [n for n in names if n in out_of_date])
    core, extras = script.selected(script.parse([])), script.selected(script.parse(["--extras"]))
    assert core == [("unet_fmnist", 0)] and extras == [("cluster_unet_fmnist_k50", 0), ("repa_dit_fmnist_l1", 0)]
    assert script.selected(script.parse(["--force", "--extras"])) == [(n, 0) for n in sorted(recipes.EXTRAS)]
    # seed 0 is retrained only where stale (or forced); other seeds are always listed (the cache skips done ones)
    assert script.selected(script.parse(["--seed", "0", "--seed", "1", "dit_fmnist", "unet_fmnist"])) == [
        ("dit_fmnist", 1), ("unet_fmnist", 0), ("unet_fmnist", 1)]
    assert set(recipes.CORE) | recipes.EXTRAS == set(recipes.SHIPPED) and not set(recipes.CORE) & recipes.EXTRAS
    assert zoo.retrain_command("repa_dit_fmnist_deep") == \
        "diffrep zoo train repa_dit_fmnist_deep --ship (in a clone: make zoo-extras)"
    assert zoo.retrain_command("repa_dit_fmnist") == "diffrep zoo train repa_dit_fmnist --ship (in a clone: make zoo)"


def test_manifest_lock_excludes_a_second_holder():
    fcntl = pytest.importorskip("fcntl")
    with zoo.store._manifest_lock():
        with open(zoo.store.MANIFEST.parent / ".manifest.lock", "w") as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(zoo.store.MANIFEST.parent / ".manifest.lock", "w") as f:    # released afterwards
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f, fcntl.LOCK_UN)


def test_training_precision_follows_recipe_and_device(monkeypatch):
    r = recipes.get("simclr_fmnist", "quick")
    assert r.cpu_bf16 and not recipes.get("dit_fmnist", "quick").cpu_bf16
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)
    assert training.precision(r, "cpu") == "bf16 autocast"
    assert training.precision(recipes.get("dit_fmnist", "quick"), "cpu") == "fp32"
    assert training.precision(recipes.get("dit_fmnist", "quick"), "cuda") == "bf16 autocast"
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: False)   # emulated bf16 would be slower: float32
    assert training.precision(r, "cpu") == "fp32"
    with training.autocast(r, "cpu"):
        assert not torch.is_autocast_enabled("cpu")


def _rehearse_script():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("rehearse", Path(__file__).parents[1] / "scripts" / "rehearse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rehearsal_cuts_the_full_sizes_and_keeps_its_models_and_grids(monkeypatch):
    from diffrep_lib import profile
    monkeypatch.setattr(recipes, "RECIPES", {n: dict(p) for n, p in recipes.RECIPES.items()})
    monkeypatch.setattr(profile, "PROFILES", dict(profile.PROFILES))
    before = {n: dict(p) for n, p in recipes.RECIPES.items()}
    full = profile.PROFILES["full"]
    _rehearse_script().miniature(20)
    for name, presets in recipes.RECIPES.items():
        assert presets.get("quick") == before[name].get("quick")            # quick is untouched
        if "full" not in presets:
            continue
        old, new = before[name]["full"], presets["full"]
        assert new.steps == min(old.steps, 20) and new.batch_size <= 32 and new.warmup <= 5
        assert (new.model, new.task, new.teacher, new.align_depth, new.clusters) == \
               (old.model, old.task, old.teacher, old.align_depth, old.clusters)
        assert bool(new.curve_every) == bool(old.curve_every) and new.curve_every in (0, 10)
    mini = profile.PROFILES["full"]
    assert mini.n_samples < full.n_samples and mini.probe_sizes < full.probe_sizes
    assert (mini.name, mini.guided_ks, mini.k_scales, mini.nfe_grid) == \
           (full.name, full.guided_ks, full.k_scales, full.nfe_grid)


def test_rehearsal_claims_report_without_raising(monkeypatch, capsys, tmp_path):
    from diffrep_lib import claims
    monkeypatch.setattr(claims, "check", claims.check)
    monkeypatch.setenv("DIFFREP_CLAIMS_LOG", str(tmp_path / "claims.jsonl"))
    _rehearse_script().report_claims()
    claim = claims.check("a model trained 20 steps is good", False, detail={"fid": 600.0}, profile="full")
    assert not claim.holds and "REHEARSAL CLAIM" in capsys.readouterr().out
    assert json.loads((tmp_path / "claims.jsonl").read_text())["holds"] is False
