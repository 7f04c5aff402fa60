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


def test_touched_rows_update_like_geoopt_and_the_others_stay() -> None:
    """``rows = "touched"``: the rows of the batch move as geoopt's update moves them (a row
    touched at every step follows the dense run bit for bit); an untouched row keeps its point
    and its moments, where the dense update lets its momentum carry it on."""
    ours, dense = _params(0)[:1], _params(0)[:1]
    lazy = RiemannianAdam([{"params": ours, "rows": "touched"}], lr=0.05, rows=2)
    ref = geoopt.optim.RiemannianAdam(dense, lr=0.05)
    g = torch.Generator().manual_seed(1)
    always, sometimes = [0, 3, 7], [5]  # rows 0, 3 and 7 in every batch; row 5 in the first
    for step in range(4):
        target = torch.randn(11, 3, 2, generator=g, dtype=torch.float64) * 0.3
        rows = always + (sometimes if step == 0 else [])
        before = ours[0].detach().clone(), {k: v.clone() for k, v in lazy.state[ours[0]].items()
                                            if torch.is_tensor(v)}  # fmt: skip
        for params, o in ((ours, lazy), (dense, ref)):
            o.zero_grad()
            ((params[0][rows] - target[rows]) ** 2).sum().backward()
            o.step()
        assert torch.equal(ours[0][always], dense[0][always])
        untouched = [r for r in range(11) if r not in rows]
        assert torch.equal(ours[0][untouched], before[0][untouched])
        for key, value in before[1].items():
            assert torch.equal(lazy.state[ours[0]][key][untouched], value[untouched])
    # the dense update moved row 5 on its momentum after its one batch; the lazy one did not
    assert not torch.equal(dense[0][5], ours[0][5])
    assert lazy.state[ours[0]]["step"] == 4


def test_rows_option_is_checked() -> None:
    p = geoopt.ManifoldParameter(torch.zeros(3, 2), manifold=PoincareBall())
    with pytest.raises(ValueError, match="rows"):
        RiemannianAdam([{"params": [p], "rows": "some"}])
