"""Feature distillation (methods/distill.py, DreamTeacher's Eq. 17): the loss is zero exactly when the student
regresses the whitened teacher maps, each regressor reads only the student map of its own resolution, the teacher
reads the noised image and the student the clean one, and the zoo keeps the encoder alone."""
import pytest
import torch
from torch import nn

from diffrep_lib import features, schedules
from diffrep_lib.methods import distill
from diffrep_lib.models import UNet, UNetConfig
from diffrep_lib.models.encoder import Encoder, EncoderConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear())


def student_and_teacher():
    torch.manual_seed(0)
    teacher = features.carry_schedule(UNet(UNetConfig(channels=(8, 16, 16), emb_dim=16, heads=2,
                                                      num_classes=None)).eval(), ABAR)
    enc = Encoder(EncoderConfig(widths=(8, 16, 24)))
    widths = distill.student_widths(enc)
    with torch.no_grad():
        t_maps = features.extract(teacher, torch.zeros(1, 1, 28, 28), 0, list(distill.TEACHER_LAYERS))
    regs = nn.ModuleDict({distill.LEVELS[i].replace(".", "_"): nn.Conv2d(widths[i], t_maps[distill.LEVELS[i]].shape[1], 1)
                          for i in distill.LEVELS})
    return distill.Distilling(enc, regs, teacher), teacher


def test_the_loss_is_zero_only_when_the_student_reproduces_the_whitened_teacher():
    torch.manual_seed(1)
    targets = {"up.1": 3 + 5 * torch.randn(4, 16, 14, 14), "up.0": torch.randn(4, 16, 7, 7)}
    exact = {k: distill.whiten(v) for k, v in targets.items()}
    assert torch.allclose(distill.distill_loss(exact, targets), torch.zeros(4), atol=1e-10)
    raw = distill.distill_loss(targets, targets)           # the unwhitened maps are not the target
    assert (raw > 1).all()
    w = distill.whiten(targets["up.1"])
    assert torch.allclose(w.flatten(1).mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(w.flatten(1).var(1, unbiased=False), torch.ones(4), atol=1e-3)
    with pytest.raises(KeyError, match="differ"):
        distill.distill_loss({"up.1": exact["up.1"]}, targets)


def test_each_regressor_reads_only_the_student_map_of_its_resolution():
    """Changing the student's last two blocks (7 x 7) leaves the 14 x 14 prediction unchanged; the shapes match
    the teacher's maps."""
    model, teacher = student_and_teacher()
    model.eval()
    x = torch.randn(3, 1, 28, 28)
    out = model(x)
    t_maps = features.extract(teacher, x, 10, list(distill.TEACHER_LAYERS))
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in t_maps.items()}
    with torch.no_grad():
        for block in list(model.encoder.body)[3:]:
            for p in block.parameters():
                p.add_(torch.randn_like(p))
    again = model(x)
    assert torch.equal(again["up.1"], out["up.1"]) and not torch.allclose(again["up.0"], out["up.0"])


def test_the_teacher_reads_the_noised_image_and_the_student_the_clean_one():
    model, teacher = student_and_teacher()
    seen = {}

    def keep(name):
        def hook(module, inp):
            seen.setdefault(name, inp[0].detach().clone())      # the first call's input; returns None
        return hook

    teacher_in, student_in = keep("teacher"), keep("student")
    teacher.register_forward_pre_hook(teacher_in)
    model.encoder.register_forward_pre_hook(student_in)
    model.encoder.body[0].register_forward_pre_hook(student_in)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    g = torch.Generator().manual_seed(5)
    targets = distill.teacher_targets(teacher, x, 250, g)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    a = ABAR[250]
    assert torch.allclose(seen["teacher"], a.sqrt() * x + (1 - a).sqrt() * noise, atol=1e-5)
    assert torch.equal(targets["up.1"], features.extract(teacher, x, 250, ["up.1"], noise=noise)["up.1"].float())
    model(x)
    assert torch.equal(seen["student"], x)


def test_the_zoo_keeps_the_encoder_alone():
    model, _ = student_and_teacher()
    assert model.export() is model.encoder and "regressors" not in dict(model.export().named_children())
    assert not any(p is q for p in model.parameters() for q in model._teacher[0].parameters())
