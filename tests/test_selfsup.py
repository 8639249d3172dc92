"""Self-supervised pieces (chs. 9 and 12): SimCLR's views and loss, Sinkhorn-Knopp, and the encoder interface."""
import math

import pytest
import torch

from diffrep_lib import assignments, encoders, features, losses, simclr, training
from diffrep_lib.models import Encoder, EncoderConfig


def test_views_are_seeded_in_range_and_the_identity_when_nothing_is_random():
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    a, b = simclr.augment(x, torch.Generator().manual_seed(1)), simclr.augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a, simclr.augment(x, torch.Generator().manual_seed(2)))
    same = simclr.augment(x, torch.Generator().manual_seed(0), scale=(1, 1), ratio=(1, 1), flip=0, brightness=0, contrast=0)
    assert torch.allclose(same, x, atol=1e-5)
    flipped = simclr.augment(x, torch.Generator().manual_seed(0), scale=(1, 1), ratio=(1, 1), flip=1, brightness=0,
                          contrast=0)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_nt_xent_is_small_for_matching_views_and_log_2n_minus_1_for_identical_ones():
    z = torch.eye(8) * 5
    assert simclr.nt_xent(z, z.clone(), temperature=0.1).max() < 1e-3      # each view's partner is unmistakable
    same = torch.ones(8, 4)                                              # every embedding equal: chance
    assert torch.allclose(simclr.nt_xent(same, same), torch.full((8,), math.log(15)), atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        simclr.nt_xent(torch.ones(8, 4), torch.ones(7, 4))


def test_sinkhorn_balances_a_planted_example():
    """All 60 samples prefer prototype 0 a little: the argmax puts them all there, Sinkhorn-Knopp spreads them
    equally over the 3 prototypes and keeps each sample's ranking where it can."""
    scores = torch.tensor([[0.3, 0.0, 0.0]]).repeat(60, 1) + 0.1 * torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    assert (scores.argmax(1) == 0).float().mean() > 0.9
    q = assignments.sinkhorn_knopp(scores, epsilon=0.05, iters=50)
    assert torch.allclose(q.sum(1), torch.ones(60), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((3,), 20.0), atol=0.5)
    counts = torch.bincount(q.argmax(1), minlength=3)
    assert counts.min() >= 15                                            # hard assignments are balanced too
    groups = torch.arange(60) % 3                                        # planted clusters are recovered
    planted = torch.nn.functional.one_hot(groups, 3).float() + 0.05 * torch.randn(60, 3)
    assert torch.equal(assignments.sinkhorn_knopp(planted, iters=10).argmax(1), groups)


def test_the_zoo_encoder_and_a_transformers_vit_share_one_interface():
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    ours = encoders.ZooEncoder(Encoder(EncoderConfig(widths=(8, 16, 24))))
    assert ours.tokens(x).shape == (3, 49, 24) and torch.allclose(ours.pooled(x), ours.tokens(x).mean(1))
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=28,
                 patch_size=4)
    hub = encoders.HubEncoder(Dinov2Model(Dinov2Config(**small)))
    assert hub.tokens(x).shape == (3, 49, 32) and hub.pooled(x).shape == (3, 32) and hub.dim == 32
    regs = encoders.HubEncoder(Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**small, num_register_tokens=4)))
    assert regs.tokens(x).shape == (3, 49, 32)                           # CLS and 4 registers dropped
    assert not any(p.requires_grad for p in hub.parameters())
    with pytest.raises(ValueError, match="channels"):
        hub.tokens(torch.rand(2, 2, 28, 28))
    assert features.as_map(hub.tokens(x)).shape == (3, 32, 7, 7)         # the tokens fold back to a 7x7 map


def test_a_few_contrastive_steps_lower_the_loss_on_fixed_images():
    from diffrep_lib import recipes
    torch.manual_seed(0)
    r = recipes.get("simclr_fmnist", "quick")
    net = Encoder(EncoderConfig(widths=(8, 16, 16), proj_dim=16))
    from diffrep_lib.data import fashion_mnist
    x = fashion_mnist.tensors("test")[0][:32]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss = training.objective(r, net, x, None, abar=None, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3


def test_cluster_ids_condition_a_unet_whose_dropout_uses_the_null_id():
    """Self-labelled guidance conditions on k cluster ids; condition dropout must map to id k (the null row),
    never to a real cluster."""
    from diffrep_lib import schedules
    from diffrep_lib.models import UNet, UNetConfig
    torch.manual_seed(0)
    k = 50
    net = UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2, num_classes=k)).eval()
    assert net.null_label == k and net.label_embed.table.num_embeddings == k + 1
    ids = torch.randint(0, k, (4,))
    seen = {}
    net.label_embed.register_forward_hook(lambda m, args, out: seen.__setitem__("y", args[0].clone()))
    abar = schedules.alphas_cumprod(schedules.betas_linear()).float()
    losses.denoising_terms(net, torch.randn(4, 1, 28, 28), ids, abar=abar, prediction="eps", p_uncond=1.0,
                             null=net.null_label, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen["y"], torch.full((4,), k))
    losses.denoising_terms(net, torch.randn(4, 1, 28, 28), ids, abar=abar, prediction="eps", p_uncond=0.0,
                             null=net.null_label, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen["y"], ids)
