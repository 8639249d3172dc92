"""Diffusion Classifier (readout/diffusion_classifier.py): the grid and subgrids of draws, the paired noise shared by
every class, the ranking's independence of the classes' order and of the batch, the eps error it measures, the
elimination (keep-all stages equal the plain classifier), and Bayes' rule on a Gaussian toy with its exact
denoiser."""
import pytest
import torch
from torch import nn

from diffrep_lib import denoisers, diffusion_classifier as dc, schedules
from diffrep_lib.errors import InputError
from diffrep_lib.models import UNet, UNetConfig

ABAR = schedules.alphas_cumprod(schedules.betas_linear())


def tiny_denoiser():
    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=(8, 8, 8), emb_dim=16, heads=2)).eval()
    for p in net.parameters():                         # a network whose output depends on the label
        p.data += 0.05 * torch.randn_like(p)
    return denoisers.VPDenoiser(net, ABAR, "eps").eval()


class GaussianClasses(nn.Module):
    """The exact denoiser of x0 ~ N(mu_c, s^2 I) per class: D(x, sigma, c) = mu_c + s^2 / (s^2 + sigma^2) (x - mu_c)."""

    def __init__(self, mu, s):
        super().__init__()
        self.mu, self.s = mu, s
        self.register_buffer("sigmas", schedules.sigma_from_abar(ABAR.double()), persistent=False)

    def forward(self, x, sigma, cond):
        mu, shrink = self.mu[cond], (self.s ** 2 / (self.s ** 2 + sigma ** 2)).view(-1, 1)
        return mu + shrink * (x - mu)


def test_the_grid_is_stratified_and_every_smaller_k_is_a_subgrid():
    assert dc.stratified_timesteps(4).tolist() == [125, 375, 625, 875]
    assert dc.stratified_timesteps(25).tolist()[:3] == [20, 60, 100]
    assert dc.subgrid(25, 5).tolist() == [2, 7, 12, 17, 22] and dc.subgrid(25, 25).tolist() == list(range(25))
    for k in (1, 2, 5, 10, 25):
        sub = dc.subgrid(50, k)
        assert len(sub) == len(set(sub.tolist())) == k and sub.max() < 50
    with pytest.raises(InputError, match="number of draws"):
        dc.subgrid(10, 11)


def test_every_class_gets_the_same_draws_when_paired():
    """A denoiser that ignores the label gives identical errors for every class with paired noise, different ones
    with independent noise."""
    torch.manual_seed(1)
    D = GaussianClasses(torch.zeros(3, 2), 1.0)
    x = torch.randn(6, 2)
    ts = dc.stratified_timesteps(8)
    paired = dc.error_table(D, x, [0, 1, 2], ts, seed=3)
    assert paired.shape == (6, 3, 8) and torch.equal(paired[:, 0], paired[:, 1]) and torch.equal(paired[:, 0], paired[:, 2])
    indep = dc.error_table(D, x, [0, 1, 2], ts, seed=3, paired=False)
    assert not torch.allclose(indep[:, 0], indep[:, 1])


def test_the_ranking_does_not_depend_on_the_order_of_the_classes_or_the_batch():
    D = tiny_denoiser()
    x = torch.randn(5, 1, 28, 28).clamp(-1, 1)
    ts = dc.stratified_timesteps(6)
    order = [3, 0, 7, 1]
    table = dc.error_table(D, x, order, ts, seed=0, batch=7)
    perm = [2, 0, 3, 1]                                # order[perm] = [7, 3, 1, 0]
    again = dc.error_table(D, x, [order[i] for i in perm], ts, seed=0, batch=64)
    assert torch.allclose(again, table[:, perm], atol=1e-5)
    chosen = torch.tensor(order)[dc.classify(table)]
    assert torch.equal(torch.tensor([order[i] for i in perm])[dc.classify(again)], chosen)


def test_the_error_is_the_eps_networks_squared_error():
    """|| (D(x, sigma, c) - x0) / sigma ||^2 is || eps - eps_theta(sqrt(abar) x0 + sqrt(1 - abar) eps, t, c) ||^2."""
    D = tiny_denoiser()
    x = torch.randn(3, 1, 28, 28).clamp(-1, 1)
    ts = torch.tensor([40, 400])
    table = dc.error_table(D, x, [2, 5], ts, seed=9)
    noise = torch.randn((3, 1, 2, 1, 28, 28), generator=torch.Generator().manual_seed(9))
    for k, t in enumerate(ts):
        a = ABAR[t].float()
        eps = noise[:, 0, k]
        xt = a.sqrt() * x + (1 - a).sqrt() * eps
        for j, c in enumerate((2, 5)):
            want = (eps - D.net(xt, torch.full((3,), float(t)), torch.full((3,), c))).square().flatten(1).mean(1)
            assert torch.allclose(table[:, j, k], want, rtol=1e-3, atol=1e-5)


def test_elimination_that_keeps_every_class_is_the_plain_classifier():
    torch.manual_seed(2)
    table = torch.rand(50, 10, 20)
    assert torch.equal(dc.adaptive(table, [(5, 10), (20, 1)])[0], dc.classify(table))
    pick, evals = dc.adaptive(table, [(20, 1)])
    assert torch.equal(pick, dc.classify(table)) and (evals == 200).all()
    pick, evals = dc.adaptive(table, [(5, 3), (20, 1)])
    assert (evals == 5 * 10 + 15 * 3).all()            # 5 draws for all 10 classes, the 15 others for 3
    first = dc.scores(table, dc.subgrid(20, 5)).topk(3, dim=1, largest=False).indices
    assert all(p in f for p, f in zip(pick.tolist(), first.tolist()))      # the winner survived the first stage
    with pytest.raises(InputError, match="keep = 1"):
        dc.adaptive(table, [(5, 3), (20, 2)])


def test_on_gaussian_classes_it_makes_bayes_decisions():
    """Two classes N(+-mu, s^2 I) with their exact denoiser: over 100 paired draws the classifier agrees with the
    Bayes-optimal decision (the nearer mean) on at least 95% of the points and is near its accuracy; ranking by the
    null label (a third class equal for all) carries no evidence."""
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.6, 0.6], [-0.6, -0.6], [0.0, 0.0]])
    y = torch.randint(0, 2, (400,), generator=g)
    x = mu[y] + 0.5 * torch.randn(400, 2, generator=g)
    D = GaussianClasses(mu, 0.5)
    table = dc.error_table(D, x, [0, 1], dc.stratified_timesteps(100), seed=1)
    pred = dc.classify(table)
    bayes = ((x - mu[1]).square().sum(1) < (x - mu[0]).square().sum(1)).long()
    assert (pred == bayes).float().mean() >= 0.95
    assert (pred == y).float().mean() >= (bayes == y).float().mean() - 0.03
    null = dc.error_table(D, x, [2, 2], dc.stratified_timesteps(100), seed=1, paired=False)
    assert abs((dc.classify(null) == y).float().mean() - 0.5) < 0.1
