"""The hyperbolic GRU word encoder, Eq. (5).

.. math::
    r_t &= \\sigma(\\log_0(W^r \\otimes \\theta^w_{t-1} \\oplus U^r \\otimes \\theta^e_t \\oplus b^r)) \\\\
    z_t &= \\sigma(\\log_0(W^z \\otimes \\theta^w_{t-1} \\oplus U^z \\otimes \\theta^e_t \\oplus b^z)) \\\\
    \\tilde\\theta^w_t &= \\varphi((W^g \\operatorname{diag}(r_t)) \\otimes \\theta^w_{t-1}
                          \\oplus U^g \\otimes \\theta^e_t \\oplus b^g) \\\\
    \\theta^w_t &= \\theta^w_{t-1} \\oplus \\operatorname{diag}(z_t) \\otimes
                  (-\\theta^w_{t-1} \\oplus \\tilde\\theta^w_t)

with :math:`\\theta^w_0 = 0`, Euclidean ``W``, ``U`` (the candidate state has its own
:math:`U^g`), hyperbolic biases ``b`` and :math:`\\otimes` the Möbius matrix–vector product,
which over a product of balls is :math:`\\exp_0(M \\log_0 x)` with per-ball maps
(:func:`hyperim.geometry.product_matvec`). :math:`\\oplus` associates to the left.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import geoopt
import torch
from torch import nn

from hyperim.geometry import PoincareBall, expmap0, logmap0, mobius_add, project
from hyperim.geometry.pairwise import KERNELS

#: Pointwise non-linearities available as ϕ (applied as its Möbius version exp0∘ϕ∘log0).
PHI: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "identity": None,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


def _cell(
    h: torch.Tensor,
    u_rz: torch.Tensor,
    u_g: torch.Tensor,
    w_rz: torch.Tensor,
    w_g: torch.Tensor,
    b_rz: torch.Tensor,
    b_g: torch.Tensor,
    phi: str,
) -> torch.Tensor:
    """One step of Eq. (5): ``θ^w_{t-1} (B, n, d) -> θ^w_t``, given ``U ⊗ θ^e_t`` of the gates."""
    b, n, d = h.shape
    lh = logmap0(h).reshape(b, n * d)  # (B, k)
    # Every Möbius result is projected back into the ball (paper §"Numerical Errors"): in
    # floating point, ⊕ and exp0 of far-out points can land on or beyond the boundary, after
    # which the next ⊕ divides by ~0 and the state explodes.
    w = project(expmap0((lh @ w_rz.T).view(b, 2 * n, d)))  # [W^r; W^z] ⊗ θ^w_{t-1}
    # r_t and z_t side by side as 2n balls: σ(log0(W ⊗ h ⊕ U ⊗ e ⊕ b))
    rz = torch.sigmoid(logmap0(project(mobius_add(project(mobius_add(w, u_rz)), b_rz))))
    r, z = rz[:, :n], rz[:, n:]  # (B, n, d) each
    w_gh = project(expmap0(((r.reshape(b, n * d) * lh) @ w_g.T).view(b, n, d)))  # (W^g diag r) ⊗ h
    cand = project(mobius_add(project(mobius_add(w_gh, u_g)), b_g))  # θ̃^w_t before ϕ
    fn = PHI[phi]
    if fn is not None:
        cand = project(expmap0(fn(logmap0(cand))))
    step = project(expmap0(z * logmap0(project(mobius_add(-h, cand)))))  # diag(z) ⊗ (-h ⊕ θ̃)
    return project(mobius_add(h, step))


class HyperbolicGRU(nn.Module):
    """Eq. (5) over a product of ``n_balls`` balls of dimension ``ball_dim``.

    ``forward(e, mask)`` maps embedded words ``(B, T, n, d)`` to encoded words
    ``(B, T, n, d)``. Documents are right-padded, so the states at real positions never see a
    padding position; ``mask`` is accepted for symmetry and zeroes nothing here.
    """

    def __init__(
        self, n_balls: int, ball_dim: int, phi: str = "identity", init: str = "uniform"
    ) -> None:
        super().__init__()
        if phi not in PHI:
            raise ValueError(f"unknown phi {phi!r}; choose from {sorted(PHI)}")
        if init not in ("uniform", "orthogonal"):
            raise ValueError(f"unknown GRU init {init!r}; choose uniform or orthogonal")
        self.n_balls, self.ball_dim, self.phi, self.init = n_balls, ball_dim, phi, init
        k = n_balls * ball_dim
        self.w_rz = nn.Parameter(torch.empty(2 * k, k))  # [W^r; W^z]
        self.w_g = nn.Parameter(torch.empty(k, k))  # W^g
        self.u = nn.Parameter(torch.empty(3 * k, k))  # [U^r; U^z; U^g]
        self.bias = geoopt.ManifoldParameter(
            torch.zeros(3, n_balls, ball_dim), manifold=PoincareBall()
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``uniform``: PyTorch's GRU initialisation, uniform in ±1/√k. ``orthogonal``: each
        k×k block of W and U orthogonal, so that ``M ⊗ x`` keeps ``‖log0 x‖`` at the start
        (the uniform one shrinks it about 0.6 times per product, pulling encoded words towards
        the origin where every label is at the same distance). Biases start at the origin."""
        k = self.n_balls * self.ball_dim
        for w in (self.w_rz, self.w_g, self.u):
            if self.init == "orthogonal":
                for block in w.split(k, dim=0):
                    nn.init.orthogonal_(block)
            else:
                w.uniform_(-1 / math.sqrt(k), 1 / math.sqrt(k))
        self.bias.zero_()

    def forward(self, e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, n, d = e.shape
        k = n * d
        b_rz, b_g = self.bias[:2].reshape(2 * n, d), self.bias[2]  # (2n, d), (n, d)
        # U ⊗ θ^e_t for all t and all three gates at once: exp0(U log0 θ^e)
        ue = project(expmap0((logmap0(e).reshape(b, t, k) @ self.u.T).view(b, t, 3 * n, d)))
        u_rz, u_g = ue[:, :, : 2 * n], ue[:, :, 2 * n :]  # (B, T, 2n, d), (B, T, n, d)
        h = e.new_zeros(b, n, d)  # θ^w_0 = 0
        out = []
        for i in range(t):
            # compiled once (with the interaction's eager fallback) and reused every step
            h = KERNELS.run(
                "gru_cell",
                _cell,
                h,
                u_rz[:, i],
                u_g[:, i],
                self.w_rz,
                self.w_g,
                b_rz,
                b_g,
                self.phi,
            )
            out.append(h)
        return torch.stack(out, dim=1)  # (B, T, n, d)

    def extra_repr(self) -> str:
        return f"{self.n_balls}x{self.ball_dim}D, phi={self.phi}"
