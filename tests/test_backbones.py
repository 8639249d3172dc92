"""Backbone properties on tiny shapes: adaLN-Zero identity at initialisation, conditioning, shared contract."""
import pytest
import torch

from diffrep_lib import denoisers, schedules, training
from diffrep_lib.models import DiT, DiTConfig, UNet, UNetConfig

SMALL_DIT = DiTConfig(dim=32, depth=2, heads=2)


def test_adaln_zero_dit_outputs_exactly_zero_and_every_block_is_the_identity_at_init():
    torch.manual_seed(0)
    net = DiT(SMALL_DIT)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([1.0, 500.0, 999.0]), torch.tensor([0, 5, 10])
    assert torch.equal(net(x, t, y), torch.zeros_like(x))
    h = torch.randn(3, 49, 32)
    c = net.time_embed(t) + net.label_embed(y)
    for block in net.blocks:
        assert torch.equal(block(h, c), h)


def test_ordinary_initialisation_is_not_the_identity():
    torch.manual_seed(0)
    net = DiT(DiTConfig(dim=32, depth=2, heads=2, zero_init=False))
    assert net(torch.randn(2, 1, 28, 28), torch.tensor([10.0, 20.0])).abs().max() > 0


def test_null_label_is_in_the_table_and_the_label_matters_after_training_steps():
    """With adaLN-Zero the first step can only move the zero output layer (every other gradient passes through
    it and is zero), so the label reaches the output from the second step on."""
    torch.manual_seed(0)
    net = DiT(SMALL_DIT)
    assert net.label_embed.table.num_embeddings == 11 and net.null_label == 10
    abar = schedules.alphas_cumprod(schedules.betas_linear())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x0, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([300.0, 300.0])
    differs = []
    for _ in range(2):
        loss = training.denoising_terms(net, x0, y, abar=abar, prediction="eps")["denoise"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            differs.append((net(x, t, torch.tensor([1, 1])) - net(x, t, torch.tensor([2, 2]))).abs().max().item())
    assert differs[0] == 0.0 and differs[1] > 1e-7


@pytest.mark.parametrize("net", [UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)), DiT(SMALL_DIT)],
                         ids=["unet", "dit"])
def test_backbones_share_one_contract(net):
    abar = schedules.alphas_cumprod(schedules.betas_linear())
    D = denoisers.VPDenoiser(net, abar)
    x, sigma = torch.randn(4, 1, 28, 28), torch.full((4,), 3.0)
    assert D(x, sigma, torch.tensor([0, 1, 2, 10])).shape == x.shape
    assert net(x, torch.full((4,), 7.0)).shape == x.shape          # no label: the null label


def test_sincos_positions_are_fixed_and_distinct():
    net = DiT(SMALL_DIT)
    pos = net.pos[0]
    assert not pos.requires_grad and pos.shape == (49, 32)
    assert torch.cdist(pos, pos).add(torch.eye(49) * 10).min() > 0.1
