import pytest
import torch

from diffrep_lib import parameterisation as P
from diffrep_lib import schedules


@pytest.mark.parametrize("src", P.KINDS)
@pytest.mark.parametrize("dst", P.KINDS)
def test_converters_invert_each_other(src, dst):
    x0, eps = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    sigma = torch.logspace(-2, 2, 16, dtype=torch.float64)[:, None]
    a, s = schedules.vp_coefficients(sigma)
    x_t = a * x0 + s * eps
    pred = P.target(src, x0, eps, a, s)
    assert torch.allclose(P.convert(P.convert(pred, src, dst, x_t, a, s), dst, src, x_t, a, s), pred, atol=1e-8)
    assert torch.allclose(P.convert(pred, src, dst, x_t, a, s), P.target(dst, x0, eps, a, s), atol=1e-8)


def test_v_is_salimans_ho_not_the_misprint():
    x0, eps = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    a, s = schedules.vp_coefficients(torch.full((4, 1), 0.7, dtype=torch.float64))
    assert torch.allclose(P.target("v", x0, eps, a, s), a * eps - s * x0)


def test_unknown_kind_is_a_clear_error():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="kind: got .score.; choose one of"):
        P.to_x0(x, "score", x, x, x)
