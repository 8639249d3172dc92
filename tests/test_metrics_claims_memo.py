import json
from pathlib import Path

import pytest
import torch

from diffrep_lib import claims, memo, metrics
from diffrep_lib.models import Classifier


def test_frechet_distance_is_zero_for_a_set_against_itself_and_grows_with_a_shift():
    f = torch.randn(2000, 8, dtype=torch.float64)
    stats = metrics.gaussian_stats(f)
    assert abs(metrics.frechet_distance(*stats, *stats)) < 1e-6
    d = [metrics.frechet_distance(*metrics.gaussian_stats(f + s), *stats) for s in (0.1, 0.5, 1.0)]
    assert d[0] < d[1] < d[2] and abs(d[2] - 8.0) < 1e-6            # ||shift||^2 = 8 * 1^2


def test_fid_fm_on_images_with_a_classifier():
    clf = Classifier().eval()
    x = torch.rand(300, 1, 28, 28) * 2 - 1
    ref = metrics.gaussian_stats(metrics.features(clf, x))
    assert abs(metrics.fid_fm(clf, x, ref)) < 1e-6
    assert metrics.fid_fm(clf, (x + 0.5).clamp(-1, 1), ref) > metrics.fid_fm(clf, (x + 0.1).clamp(-1, 1), ref) > 0


def test_sample_accuracy_and_energy_distance():
    clf = Classifier().eval()
    x = torch.randn(50, 1, 28, 28)
    pred = clf(x).argmax(1)
    assert metrics.sample_accuracy(clf, x, pred) == 1.0
    a = torch.randn(500, 2)
    assert abs(metrics.energy_distance(a, a)) < 1e-9 and metrics.energy_distance(a, a + 3) > 1


def test_claim_prints_one_verdict_line_and_raises_when_false(capsys, tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("DIFFREP_CLAIMS_LOG", str(log))
    c = claims.check("two is more than one", 2 > 1, detail={"a": torch.tensor(2.0)})
    assert capsys.readouterr().out == "✓ CLAIM: two is more than one\n" and c.detail == {"a": 2.0}
    with pytest.raises(claims.ClaimFailed, match="one is more than two"):
        claims.check("one is more than two", 1 > 2, detail={"a": 1})
    c = claims.check("needs a GPU", False, full_only=True, profile="quick")
    assert "checked at full" in capsys.readouterr().out.splitlines()[-1] and not c.checked
    with pytest.raises(claims.ClaimFailed):
        claims.check("needs a GPU", False, full_only=True, profile="full")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["holds"] for r in rows] == [True, False, False, False]


def test_claims_carry_control_and_margin_into_the_log_and_the_table(tmp_path, monkeypatch, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("DIFFREP_CLAIMS_LOG", str(log))
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("DIFFREP_RECORDS", str(records))
    monkeypatch.setattr(claims, "_CHECKED", {})
    a = claims.check("A beats B", True, control="B", margin=(torch.tensor(0.0312), 0.004), profile="quick")
    b = claims.check("C beats D", True, control="D", margin=0.5, profile="quick")
    assert (a.margin, a.se, b.margin, b.se) == (pytest.approx(0.0312), 0.004, 0.5, None)
    row = json.loads(log.read_text().splitlines()[0])
    assert (row["control"], row["margin"], row["se"]) == ("B", pytest.approx(0.0312), 0.004)
    (records / "claims-seeds.json").write_text(json.dumps({"profile": "quick", "claims": [
        {"chapter": "x", "statement": "A beats B", "runs": [
            {"seed": 0, "holds": True, "margin": 0.03}, {"seed": 1, "holds": False, "margin": -0.01}]}]}))
    (records / "full.json").write_text(json.dumps([{"chapter": "x", "claims": [
        {"statement": "C beats D", "holds": True, "margin": 0.7, "se": None}]}]))
    frame = claims.table(profile="quick").data
    assert list(frame["claim"]) == ["A beats B", "C beats D"] and list(frame["control"]) == ["B", "D"]
    assert frame.loc[1, "this run (quick)"] == "holds, +0.0312 ± 0.004"
    assert frame.loc[1, "seeds (quick)"] == "1/2 (seeds 0, 1); fails at 1; margin -0.01 to +0.03"
    assert frame.loc[2, "seeds (quick)"] == "not run at other seeds yet"
    assert (frame.loc[1, "full"], frame.loc[2, "full"]) == ("not run at full yet", "holds (+0.7)")
    claims.check("A beats B", True, control="B", margin=0.02)            # a cell run again replaces its claim
    assert len(claims.table().data) == 2


def test_claims_seeds_record_merges_by_chapter_and_seed(tmp_path):
    import argparse
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import claims_seeds

    path = tmp_path / "claims-seeds.json"
    c = {"margin": 0.1, "se": None}
    first = {("ch1", "s1"): [(0, True, {}, c), (1, True, {}, c)], ("ch2", "s2"): [(0, True, {}, c)]}
    claims_seeds.save(first, argparse.Namespace(profile="quick", seeds=[0, 1]), path)
    again = {("ch1", "s1"): [(2, False, {}, {"margin": -0.1, "se": 0.05})], ("ch1", "s3"): [(2, True, {}, c)]}
    claims_seeds.save(again, argparse.Namespace(profile="quick", seeds=[2]), path)
    rec = {(c["chapter"], c["statement"]): c["runs"] for c in json.loads(path.read_text())["claims"]}
    assert [r["seed"] for r in rec["ch1", "s1"]] == [0, 1, 2] and rec["ch1", "s1"][2]["holds"] is False
    assert [r["seed"] for r in rec["ch1", "s3"]] == [2] and [r["seed"] for r in rec["ch2", "s2"]] == [0]


calls = []


def expensive(a, b=1):
    calls.append((a, b))
    return {"x": torch.arange(3) * a, "score": 0.5 * b}


def test_memo_computes_once_per_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREP_CACHE", str(tmp_path))
    calls.clear()
    r1 = memo.cached(expensive, 2, b=3, deps=("model-v1",))
    r2 = memo.cached(expensive, 2, b=3, deps=("model-v1",))
    assert calls == [(2, 3)] and torch.equal(r1["x"], r2["x"]) and r2["score"] == 1.5
    memo.cached(expensive, 2, b=3, deps=("model-v2",))           # a changed model recomputes
    memo.cached(expensive, 2, b=4, deps=("model-v1",))           # so does a changed argument
    assert len(calls) == 3
    assert torch.equal(memo.cached(lambda: torch.ones(2)), torch.ones(2))


def test_frechet_distance_matches_the_matrix_square_root_formula():
    import numpy as np
    import scipy.linalg

    a = torch.randn(500, 16, dtype=torch.float64)
    b = torch.randn(500, 16, dtype=torch.float64) * 1.3 + 0.2
    (m1, c1), (m2, c2) = metrics.gaussian_stats(a), metrics.gaussian_stats(b)
    root = np.real(scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()))
    want = float(((m1 - m2) ** 2).sum()) + np.trace(c1.numpy() + c2.numpy() - 2 * root)
    assert abs(metrics.frechet_distance(m1, c1, m2, c2) - want) < 1e-8


def test_diversity_is_zero_for_copies_and_grows_with_spread():
    y = torch.arange(20) % 2
    x = torch.randn(1, 1, 4, 4).expand(20, -1, -1, -1)
    assert metrics.diversity(x, y) == 0.0
    a = torch.randn(20, 1, 4, 4)
    assert metrics.diversity(2 * a, y) == pytest.approx(2 * metrics.diversity(a, y))


def test_memo_key_changes_when_the_function_body_does():
    def f(a):
        return a

    def g(a):
        return a + 0

    g.__qualname__ = f.__qualname__                   # same name and module: only the source differs
    assert memo.key(f, (1,), {}, ()) != memo.key(g, (1,), {}, ())
    assert memo.key(f, (1,), {}, ()) == memo.key(f, (1,), {}, ())
