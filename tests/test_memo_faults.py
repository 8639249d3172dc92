"""The disk memo never serves a wrong or stale result: keys see every element of a tensor and the library's code,
results round-trip exactly, foreign and truncated files are rebuilt with a warning, and a failing write keeps
the previous file and still returns the result."""
import shutil

import pytest
import torch

from diffrep_lib import memo
from diffrep_lib.errors import InputError

calls = []


def produce(a, b=1):
    calls.append((a, b))
    return {"x": torch.arange(4) * a, "shape": (a, (b, "c")), "pairs": [(1, 2), [3]], "by_id": {1: (2.5,)},
            "score": float(a * b)}


def files(cache):
    return sorted(p.name for p in (cache / "memo").iterdir())


def test_tensors_differing_only_in_their_middle_get_different_keys():
    a, b = torch.zeros(10000), torch.zeros(10000)
    b[5000] = 1
    assert repr(a) == repr(b)                                      # the old key's blind spot
    assert memo.key(produce, (a,), {}, ()) != memo.key(produce, (b,), {}, ())
    assert memo.key(produce, (a,), {}, ()) == memo.key(produce, (a.clone(),), {}, ())
    assert memo.key(produce, (a,), {}, ()) != memo.key(produce, (a.double(),), {}, ())   # dtype counts
    assert memo.key(produce, (a,), {}, ()) != memo.key(produce, (a.view(100, 100),), {}, ())   # so does shape


def test_numpy_arrays_containers_and_plain_values_are_keyed_exactly():
    import numpy as np

    k = lambda *args, **kwargs: memo.key(produce, args, kwargs, ())
    a, b = np.zeros(10000), np.zeros(10000)
    b[5000] = 1
    assert k(a) != k(b) and k(a) == k(a.copy())
    assert k((1, 2)) != k([1, 2])                                  # a tuple is not a list
    assert k(1) != k(1.0) != k("1") and k(True) != k(1) and k(None) != k("None")
    assert k({"a": 1, "b": 2}) == k({"b": 2, "a": 1}) != k({"a": 1, "b": 3})
    assert k(b=1, a=2) == k(a=2, b=1)
    assert memo.key(produce, (), {}, ("m-1",)) != memo.key(produce, (), {}, ("m-2",))


def test_memo_with_the_library_call_sites_argument_kinds(cache):
    def sample_set(*args, **kwargs):
        calls.append(args)
        return {"x": torch.randn(3), "y": torch.arange(3)}

    calls.clear()
    args = ("ddpm", "quick", 0, "heun", 35, 100, 0, "karras", True, None, 1.0, (1, 2))
    r1 = memo.cached(sample_set, *args, labels=(3, 4), deps=("model-v1", "clf-v2"))
    r2 = memo.cached(sample_set, *args, labels=(3, 4), deps=("model-v1", "clf-v2"))
    assert len(calls) == 1 and torch.equal(r1["x"], r2["x"])
    memo.cached(sample_set, *args, labels=[3, 4], deps=("model-v1", "clf-v2"))
    assert len(calls) == 2


def test_a_result_with_tuples_round_trips_exactly(cache):
    calls.clear()
    fresh = memo.cached(produce, 3, b=2)
    stored = memo.cached(produce, 3, b=2)
    assert calls == [(3, 2)]
    assert list(stored) == list(fresh) == ["x", "shape", "pairs", "by_id", "score"]
    for name in ("shape", "pairs", "by_id", "score"):
        assert stored[name] == fresh[name] and type(stored[name]) is type(fresh[name])
    assert stored["shape"] == (3, (2, "c")) and stored["pairs"] == [(1, 2), [3]] and stored["by_id"] == {1: (2.5,)}
    assert torch.equal(stored["x"], fresh["x"])


def test_a_result_value_that_is_not_json_is_refused_naming_its_key(cache):
    with pytest.raises(InputError, match="bad_value"):
        memo.cached(lambda: {"x": torch.ones(1), "bad_value": {1, 2}})
    with pytest.raises(InputError, match="nested"):
        memo.cached(lambda: {"nested": [torch.ones(1)]})


def test_a_changed_library_recomputes(cache, monkeypatch):
    calls.clear()
    memo.cached(produce, 1)
    memo.cached(produce, 1)
    assert len(calls) == 1
    assert len(memo.library_digest()) == 64 and memo.library_digest() is memo.library_digest()  # once per process
    monkeypatch.setattr(memo, "library_digest", lambda: "0" * 64)       # e.g. a sampler edited in an exercise
    memo.cached(produce, 1)
    assert len(calls) == 2


def test_a_foreign_file_is_recomputed_with_a_warning(cache):
    calls.clear()
    memo.cached(produce, 1)
    memo.cached(produce, 2)
    one = cache / "memo" / f"produce-{memo.key(produce, (1,), {}, ())}.safetensors"
    two = cache / "memo" / f"produce-{memo.key(produce, (2,), {}, ())}.safetensors"
    shutil.copyfile(one, two)                                      # key 1's result under key 2's name
    with pytest.warns(RuntimeWarning, match=f"{two.name}.*another key"):
        r = memo.cached(produce, 2)
    assert calls == [(1, 1), (2, 1), (2, 1)] and torch.equal(r["x"], torch.arange(4) * 2)
    assert torch.equal(memo.cached(produce, 2)["x"], torch.arange(4) * 2) and len(calls) == 3   # overwritten


def test_a_truncated_file_is_recomputed_with_a_warning(cache):
    calls.clear()
    memo.cached(produce, 5)
    (path,) = (cache / "memo").glob("produce-*.safetensors")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.warns(RuntimeWarning, match=f"{path.name}.*unreadable"):
        r = memo.cached(produce, 5)
    assert len(calls) == 2 and r["shape"] == (5, (1, "c"))
    memo.cached(produce, 5)
    assert len(calls) == 2


def test_a_failing_write_returns_the_result_and_leaves_no_temporary_file(cache, request):
    calls.clear()
    memo.cached(produce, 7)
    (path,) = (cache / "memo").glob("produce-*.safetensors")
    path.write_bytes(path.read_bytes()[:-3])                       # a bad file: the next call rewrites this key
    bad_bytes = path.read_bytes()
    request.getfixturevalue("full_disk")                           # from here on, the disk is full
    with pytest.warns(RuntimeWarning) as record:
        r = memo.cached(produce, 7)
    assert torch.equal(r["x"], torch.arange(4) * 7) and len(calls) == 2        # the caller still gets the result
    messages = [str(w.message) for w in record]
    assert any("could not store" in m and path.name in m for m in messages)
    assert files(cache) == [path.name] and path.read_bytes() == bad_bytes       # untouched, no *.tmp
    with pytest.warns(RuntimeWarning, match="could not store"):
        memo.cached(produce, 9)                                    # a new key on a full disk: nothing written
    assert files(cache) == [path.name]


def test_a_failing_overwrite_leaves_the_previous_file_intact(cache, request):
    calls.clear()
    first = memo.cached(produce, 4)
    (path,) = (cache / "memo").glob("produce-*.safetensors")
    before = path.read_bytes()
    request.getfixturevalue("full_disk")
    with pytest.warns(RuntimeWarning, match="could not store"):
        memo._write(path, {"x": torch.zeros(2)}, memo.key(produce, (4,), {}, ()), "produce")
    assert path.read_bytes() == before and files(cache) == [path.name]
    assert torch.equal(memo.cached(produce, 4)["x"], first["x"]) and len(calls) == 1    # still served


def test_models_and_identity_objects_are_refused_with_the_fix(cache):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(InputError, match=r"argument 0.*pass a name.*deps"):
        memo.cached(produce, model)
    with pytest.raises(InputError, match=r"argument 'b'.*memory address.*pass a name"):
        memo.cached(produce, 1, b=object())
    with pytest.raises(InputError, match=r"deps\[0\]"):
        memo.cached(produce, 1, deps=(model,))
    with pytest.raises(InputError, match="closure variable 'model'"):
        memo.cached(lambda: model(torch.ones(2)))
    assert not (cache / "memo").exists()


def test_callables_are_keyed_by_name_source_and_captured_values():
    def scaled(s):
        return lambda x: x * s

    assert memo.key(produce, (scaled(2),), {}, ()) != memo.key(produce, (scaled(3),), {}, ())
    assert memo.key(produce, (scaled(2),), {}, ()) == memo.key(produce, (scaled(2),), {}, ())
    assert memo.key(produce, (torch.relu,), {}, ()) != memo.key(produce, (torch.tanh,), {}, ())


def test_memo_0_bypasses_the_cache(cache, monkeypatch):
    monkeypatch.setenv("DIFFREP_MEMO", "0")
    calls.clear()
    memo.cached(produce, 1)
    memo.cached(produce, 1)
    assert len(calls) == 2 and not (cache / "memo").exists()
