"""Joint diffusion models (models/joint_unet.py, methods/joint.py): the denoiser path is the plain U-Net's, the
head reads the encoder alone, the labelled subset is balanced, seeded and the only source of the cross-entropy,
and the classifier-alone control trains no denoiser."""
import dataclasses

import pytest
import torch

from diffrep_lib.errors import InputError
from diffrep_lib.methods import joint
from diffrep_lib.models import JointUNet, JointUNetConfig, UNet, UNetConfig
from diffrep_lib.zoo import recipes

SMALL = JointUNetConfig(channels=(8, 16, 16), emb_dim=32, groups=4, heads=2, head_hidden=16)


def test_the_denoiser_path_is_the_plain_unet():
    torch.manual_seed(0)
    net = JointUNet(SMALL).eval()
    plain = UNet(UNetConfig(**{f.name: getattr(SMALL, f.name) for f in dataclasses.fields(UNetConfig)})).eval()
    missing = plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("head.")})
    assert not missing.missing_keys and not missing.unexpected_keys
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 10, 500])
    assert torch.equal(net(x, t), plain(x, t))


def test_the_head_reads_the_encoder_only():
    torch.manual_seed(0)
    net = JointUNet(SMALL)
    with torch.no_grad():                                  # no zero-initialised layer to hide a path
        for p in net.parameters():
            p.normal_(0, 0.2)
    assert net.pooled(torch.randn(2, 1, 28, 28)).shape == (2, 8 + 16 + 16 + 16)
    net.classify(torch.randn(4, 1, 28, 28)).sum().backward()
    for name, p in net.named_parameters():
        reached = p.grad is not None and bool(p.grad.abs().sum() > 0)
        if name.startswith(("up", "out")):
            assert not reached, name                       # the decoder is untouched by the classifier
        if name.startswith(("head", "down", "mid", "stem")) and "emb" not in name:
            assert reached, name


def test_the_labelled_subset_is_balanced_seeded_and_distinct():
    idx = joint.labelled_subset(60, seed=0)
    _, y = __import__("diffrep_lib").data.fashion_mnist.tensors("train")
    assert len(set(idx.tolist())) == 60
    assert torch.equal(torch.bincount(y[idx], minlength=10), torch.full((10,), 6))
    assert torch.equal(idx, joint.labelled_subset(60, seed=0))
    assert not torch.equal(idx, joint.labelled_subset(60, seed=1))
    with pytest.raises(InputError, match="multiple of 10"):
        joint.labelled_subset(55, seed=0)


def test_the_labelled_channel_holds_only_subset_images_with_their_labels():
    r = dataclasses.replace(recipes.get("joint_unet_a1e-3"), options=(("alpha", 1e-3), ("labels", 20)))
    x, y = joint.joint_data(r)
    train_x, train_y = __import__("diffrep_lib").data.fashion_mnist.tensors("train")
    assert x.shape == (len(train_x), 2, 28, 28) and torch.equal(x[:, 0], train_x[:, 0])
    subset = joint.labelled_subset(20, r.seed)
    # every labelled image is one of the subset's, with that image's label
    match = (x[:500, 1].flatten(1)[:, None] == train_x[subset, 0].flatten(1)[None]).all(-1)
    assert bool(match.any(1).all())
    assert torch.equal(y[:500], train_y[subset][match.float().argmax(1)])


@pytest.mark.parametrize("denoise", [True, False])
def test_the_terms_and_their_weights(denoise):
    r = dataclasses.replace(recipes.get("joint_unet_a1e-3"), model=SMALL,
                            options=(("alpha", 0.25), ("labels", 20), ("denoise", denoise)))
    net = JointUNet(SMALL)
    x, y = torch.randn(6, 2, 28, 28), torch.randint(10, (6,))
    terms = joint.joint_terms(net, x, y, recipe=r, abar=recipes.abar(r), generator=torch.Generator().manual_seed(0))
    assert set(terms) == ({"denoise", "ce"} if denoise else {"ce"})
    assert all(v.shape == (6,) for v in terms.values())
    assert joint.joint_weights(r) == {"ce": 0.25}
    # the cross-entropy depends on channel 1 only: a new channel 0 changes the denoising term alone
    x2 = x.clone()
    x2[:, 0] = torch.randn(6, 28, 28)
    net.eval()
    again = joint.joint_terms(net, x2, y, recipe=r, abar=recipes.abar(r), generator=torch.Generator().manual_seed(0))
    first = joint.joint_terms(net, x, y, recipe=r, abar=recipes.abar(r), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(again["ce"], first["ce"])


def test_detach_trains_the_head_alone():
    r = dataclasses.replace(recipes.get("joint_unet_probe"), model=SMALL, options=(("detach", True), ("denoise", False)))
    net = JointUNet(SMALL)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    x, y = torch.randn(4, 2, 28, 28), torch.randint(10, (4,))
    joint.joint_terms(net, x, y, recipe=r, abar=recipes.abar(r))["ce"].sum().backward()
    reached = {n for n, p in net.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    assert reached and all(n.startswith("head.") for n in reached)


def test_a_joint_recipe_starts_from_its_teacher_and_the_classifier_from_scratch():
    from diffrep_lib import zoo
    teacher = zoo.get("unet_fmnist_uncond", "quick").state_dict()
    net = zoo.build_model(recipes.get("joint_unet_a1e-2"), for_training=True)
    assert all(torch.equal(net.state_dict()[k], v.float()) for k, v in teacher.items())
    scratch = zoo.build_model(recipes.get("joint_unet_classifier"), for_training=True)
    assert not torch.equal(scratch.state_dict()["down.0.res.conv1.weight"], teacher["down.0.res.conv1.weight"].float())


def test_calibration_error_of_known_cases():
    from diffrep_lib.core import metrics
    y = torch.tensor([0, 1] * 50)
    sure = torch.zeros(100, 10)
    sure[:, 0] = 1.0                                      # always class 0 at confidence 1, right half the time
    c = metrics.calibration(sure, y)
    assert abs(c["ece"] - 0.5) < 1e-6 and c["count"].sum() == 100 and c["count"][-1] == 100
    honest = torch.full((100, 10), 0.5 / 9)
    honest[:, 0] = 0.5                                    # confidence 0.5, right half the time: calibrated
    assert metrics.calibration(honest, y)["ece"] < 1e-6
    with pytest.raises(InputError):
        metrics.calibration(torch.ones(3, 10), torch.zeros(4, dtype=torch.long))


def test_bad_names_get_one_clear_error():
    from diffrep_lib.experiments import generation, joint_models
    with pytest.raises(InputError, match="joint model"):
        joint_models.head_outputs("unet_fmnist", "quick", "test")
    with pytest.raises(InputError, match="choose one of"):
        joint_models.head_outputs("joint_unet_a1e-3", "quick", "train")
    with pytest.raises(InputError, match="classifier head"):
        generation.guided_denoiser("unet_fmnist_uncond", "quick", guide="self", scale=1.0)


def test_the_validation_images_are_never_labelled():
    from diffrep_lib.experiments import joint_models
    x_val, _ = joint_models.validation_split(seed=0, n=2000)
    train_x, _ = __import__("diffrep_lib").data.fashion_mnist.tensors("train")
    labelled = train_x[joint.labelled_subset(600, 0), 0].flatten(1)
    same = (x_val[:, 0].flatten(1)[:, None] == labelled[None]).all(-1)
    assert not bool(same.any())
