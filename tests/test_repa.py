"""REPA's alignment term: zero when aligned, gradients only up to block k, clear errors for mismatched grids."""
import pytest
import torch

from diffrep_lib import repa
from diffrep_lib.models import DiT, DiTConfig


def test_alignment_loss_is_zero_for_aligned_tokens_and_two_for_opposite_ones():
    target = torch.randn(3, 49, 16)
    assert torch.allclose(repa.alignment_loss(2.5 * target, target), torch.zeros(3), atol=1e-6)
    assert torch.allclose(repa.alignment_loss(-target, target), torch.full((3,), 2.0), atol=1e-6)
    with pytest.raises(ValueError, match="token grids differ"):
        repa.alignment_loss(torch.randn(3, 196, 16), target)          # a patch-2 DiT against a 7x7 encoder
    with pytest.raises(ValueError, match="width"):
        repa.alignment_loss(torch.randn(3, 49, 8), target)


def test_the_gradient_reaches_only_the_projector_and_the_blocks_up_to_k():
    torch.manual_seed(0)
    net = DiT(DiTConfig(dim=32, depth=4, heads=2, zero_init=False))
    proj = repa.Projector(32, 16, hidden=24)
    x_t, t, y = torch.randn(2, 1, 28, 28), torch.tensor([10, 500]), torch.tensor([1, 2])
    out, loss = repa.repa_terms(net, proj, torch.randn(2, 49, 16), x_t, t, y, depth=2)
    assert out.shape == x_t.shape and loss.shape == (2,)
    loss.mean().backward()
    grad = lambda m: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    assert grad(proj) and grad(net.patch) and grad(net.blocks[0]) and grad(net.blocks[1])
    assert not grad(net.blocks[2]) and not grad(net.blocks[3]) and not grad(net.final)
    assert all(not m._forward_hooks for m in net.modules())            # the capture hook is gone
    with pytest.raises(ValueError, match="depth"):
        repa.repa_terms(net, proj, torch.randn(2, 49, 16), x_t, t, y, depth=5)
