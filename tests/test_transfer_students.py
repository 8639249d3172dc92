"""Evaluating distilled students (experiments/transfer.py): a fine-tune trains the encoder itself (not only the head)
on the first `labels` images of the probes' seeded order, leaves the zoo's encoder untouched, starts the
from-scratch student from the untrained architecture, and refuses a model that is not an encoder."""
import pytest
import torch

from diffrep_lib import zoo
from diffrep_lib.errors import InputError
from diffrep_lib.experiments import activations, transfer

STUDENT = "distill_unet_t10"


def test_a_fine_tune_trains_the_encoder_and_leaves_the_zoo_model_as_it_was(cache, monkeypatch):
    loaded = []
    real_load = zoo.load

    def spy(*args, **kwargs):
        enc = real_load(*args, **kwargs)
        loaded.append((enc, {k: v.clone() for k, v in enc.state_dict().items()}))
        return enc

    monkeypatch.setattr(transfer.zoo, "load", spy)
    out = transfer.finetune(STUDENT, "quick", labels=64, steps=3, n_test=40)
    (enc, before), = loaded
    moved = [k for k, v in enc.state_dict().items() if v.is_floating_point() and not torch.equal(v.float(), before[k].float())]
    assert "body.0.0.weight" in moved                  # the first conv: the gradient reached the whole encoder
    again = zoo.get(STUDENT, "quick").state_dict()
    assert all(torch.equal(again[k].float(), v.float()) for k, v in before.items())
    assert out["hits"].shape == (40,) and out["labels"] == 64 and 0 <= out["accuracy"] <= 1


def test_the_fine_tune_reads_only_the_first_labels_images_of_the_seeded_order(cache, monkeypatch):
    seen = []
    real_split = activations.probe_split

    def spy(sizes, seed):
        x, y, xt, yt = real_split(sizes, seed)
        seen.append((x, sizes, seed))
        return x, y, xt, yt

    monkeypatch.setattr(transfer, "probe_split", spy)
    transfer.finetune(STUDENT, "quick", labels=30, steps=1, n_test=20, seed=3)
    (x, sizes, seed), = seen
    assert sizes == (30, 20) and seed == 3
    assert torch.equal(x, real_split((500, 1), 3)[0][:30])          # a prefix of the frozen probes' training images


def test_the_scratch_student_starts_from_the_untrained_architecture(cache, monkeypatch):
    starts = []
    real_load = zoo.load
    monkeypatch.setattr(transfer.zoo, "load", lambda *a, **k: starts.append(k.get("init")) or real_load(*a, **k))
    transfer.finetune(STUDENT, "quick", init="random", labels=20, steps=1, n_test=20)
    untrained = zoo.untrained(STUDENT, "quick").state_dict()
    trained = zoo.get(STUDENT, "quick").state_dict()
    assert starts == ["random"]
    w = "body.0.0.weight"
    assert not torch.equal(untrained[w].float(), trained[w].float())


def test_frozen_probe_scores_the_pooled_embedding_on_the_probe_split(cache):
    out = transfer.frozen_probe(STUDENT, "quick", sizes=(300, 200))
    assert out["n_train"] == 300 and out["n_test"] == 200
    assert 0.5 < out["linear"] <= 1 and 0.5 < out["knn"] <= 1         # chance is 0.1; a trained encoder is far above


@pytest.mark.parametrize("call", [
    lambda: transfer.finetune("unet_fmnist", "quick", labels=10, steps=1, n_test=10),
    lambda: transfer.frozen_probe("unet_fmnist", "quick", sizes=(10, 10)),
])
def test_a_model_that_is_not_an_encoder_is_refused_with_the_fix(call):
    with pytest.raises(InputError, match="zoo encoder"):
        call()


@pytest.mark.parametrize("kwargs", [dict(labels=0, steps=1, n_test=10), dict(labels=10, steps=-1, n_test=10),
                                    dict(labels=10, steps=1, n_test=10 ** 6), dict(labels=1.5, steps=1, n_test=10)])
def test_bad_sizes_are_refused(kwargs):
    with pytest.raises(InputError):
        transfer.finetune(STUDENT, "quick", **kwargs)


def test_recomputed_batchnorm_statistics_are_those_of_the_images():
    from diffrep_lib.models.encoder import Encoder, EncoderConfig
    torch.manual_seed(0)
    net = Encoder(EncoderConfig(widths=(4, 8, 8))).eval()
    x = torch.randn(70, 1, 28, 28)
    first_conv, bn = net.body[0][0], net.body[0][1]
    with torch.no_grad():
        h = first_conv(x)
    transfer.recompute_batchnorm(net, x, "cpu", batch=70)              # one batch: the exact statistics
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bn.running_var, h.var((0, 2, 3)), rtol=1e-4, atol=1e-6)
    assert not net.training and bn.momentum == 0.1                   # left as it was found
    transfer.recompute_batchnorm(net, x, "cpu", batch=40)              # split 35 + 35: the mean is exact
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)


def test_zero_steps_is_the_linear_probe_alone(cache):
    out = transfer.finetune(STUDENT, "quick", labels=100, steps=0, n_test=60)
    assert torch.equal(out["hits"], out["probe_hits"]) and out["accuracy"] == out["probe_accuracy"]
