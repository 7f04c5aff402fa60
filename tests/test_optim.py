"""The row-block Riemannian Adam gives geoopt's numbers exactly."""

from __future__ import annotations

import geoopt
import pytest
import torch

from hyperim.geometry.manifold import PoincareBall
from hyperim.optim import RiemannianAdam


def _params(seed: int) -> list[geoopt.ManifoldParameter]:
    g = torch.Generator().manual_seed(seed)
    table = (torch.rand(11, 3, 2, generator=g, dtype=torch.float64) - 0.5) * 0.6
    bias = (torch.rand(5, generator=g, dtype=torch.float64) - 0.5) * 0.6
    return [
        geoopt.ManifoldParameter(table, manifold=PoincareBall()),
        geoopt.ManifoldParameter(bias[:4].view(2, 2), manifold=PoincareBall()),
    ]


@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"weight_decay": 0.1}])
def test_row_blocks_equal_geoopt_bit_for_bit(options: dict) -> None:
    ours, ref = _params(0), _params(0)
    opt = RiemannianAdam(ours, lr=0.05, rows=4, **options)  # 11 rows -> blocks 4, 4, 3
    ref_opt = geoopt.optim.RiemannianAdam(ref, lr=0.05, **options)
    g = torch.Generator().manual_seed(1)
    for step in range(5):
        target = torch.randn(11, 3, 2, generator=g, dtype=torch.float64) * 0.3
        for params, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            loss = ((params[0] - target) ** 2).sum() + params[1].pow(3).sum()
            if step == 2:  # a step where one parameter has no gradient
                loss = ((params[0] - target) ** 2).sum()
            loss.backward()
            o.step()
        for a, b in zip(ours, ref, strict=True):
            assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt.state[ours[0]][key], ref_opt.state[ref[0]][key])
    assert opt.state[ours[0]]["step"] == ref_opt.state[ref[0]]["step"] == 5
    assert float(ours[0].detach().norm(dim=-1).max()) < 1


def test_sparse_gradients_are_refused() -> None:
    p = geoopt.ManifoldParameter(torch.zeros(3, 2), manifold=PoincareBall())
    p.grad = torch.zeros(3, 2).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        RiemannianAdam([p]).step()
