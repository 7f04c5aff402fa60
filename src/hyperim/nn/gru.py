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

:class:`HyperbolicGRU` is the fast implementation (planar layout, permuted weights, compiled
cell, checkpointing); :func:`reference_cell` and :func:`reference_forward` are Eq. (5) written
out line by line, slow, which the tests use to check the fast one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import geoopt
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from hyperim.geometry import (
    PoincareBall,
    expmap0,
    logmap0,
    mobius_add,
    mobius_fn,
    mobius_pointwise,
    product_matvec,
    project,
)
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
    """One step of Eq. (5): ``θ^w_{t-1} -> θ^w_t``, given ``U ⊗ θ^e_t`` of the gates.

    Planar layout: points are ``(B, d, n)`` (coordinate axis -2, balls last), so every per-ball
    norm and inner product is a sum of ``d`` rows of length ``n`` that vectorises; ``w_rz``
    and ``w_g`` are permuted to match (:meth:`HyperbolicGRU._planar_weights`).
    """
    b, d, n = h.shape
    lh = logmap0(h, dim=-2).reshape(b, d * n)  # (B, k)
    # Every Möbius result is projected back into the ball (paper §"Numerical Errors"): in
    # floating point, ⊕ and exp0 of far-out points can land on or beyond the boundary, after
    # which the next ⊕ divides by ~0 and the state explodes.
    w = project(expmap0((lh @ w_rz.T).view(b, d, 2 * n), dim=-2), dim=-2)  # [W^r; W^z] ⊗ θ^w_{t-1}
    # r_t and z_t side by side as 2n balls: σ(log0(W ⊗ h ⊕ U ⊗ e ⊕ b))
    wu = project(mobius_add(w, u_rz, dim=-2), dim=-2)
    rz = torch.sigmoid(logmap0(project(mobius_add(wu, b_rz, dim=-2), dim=-2), dim=-2))
    r, z = rz[:, :, :n], rz[:, :, n:]  # (B, d, n) each
    # (W^g diag r) ⊗ h
    w_gh = project(expmap0(((r.reshape(b, d * n) * lh) @ w_g.T).view(b, d, n), dim=-2), dim=-2)
    cand = project(mobius_add(project(mobius_add(w_gh, u_g, dim=-2), dim=-2), b_g, dim=-2), dim=-2)
    fn = PHI[phi]
    if fn is not None:  # θ̃^w_t = ϕ(...) as exp0∘ϕ∘log0
        cand = project(expmap0(fn(logmap0(cand, dim=-2)), dim=-2), dim=-2)
    diff = project(mobius_add(-h, cand, dim=-2), dim=-2)  # -θ^w_{t-1} ⊕ θ̃^w_t
    step = project(expmap0(z * logmap0(diff, dim=-2), dim=-2), dim=-2)  # diag(z_t) ⊗ (...)
    return project(mobius_add(h, step, dim=-2), dim=-2)


def _input_gates(e: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U ⊗ θ^e_t = exp0(U log0 θ^e_t)`` for every step and all three gates at once:
    ``(B, T, n, d)`` -> ``(T, B, d, 2n)`` (r and z) and ``(T, B, d, n)`` (candidate): planar
    and time-major. Compiled as one graph, its backward keeps a few such tensors, not a dozen."""
    b, t, n, d = e.shape
    ue = project(expmap0((logmap0(e).reshape(b, t, n * d) @ u.T).view(b, t, 3 * n, d)))
    ue = ue.permute(1, 0, 3, 2)  # (T, B, d, 3n)
    return ue[..., : 2 * n].contiguous(), ue[..., 2 * n :].contiguous()


def _planar_index(n: int, d: int) -> torch.Tensor:
    """``idx[c * n + i] = i * d + c``: planar position of (ball i, coordinate c) -> flat one."""
    return torch.arange(n * d).view(n, d).T.reshape(-1)


class HyperbolicGRU(nn.Module):
    """Eq. (5) over a product of ``n_balls`` balls of dimension ``ball_dim``.

    ``forward(e, mask)`` maps embedded words ``(B, T, n, d)`` to encoded words
    ``(B, T, n, d)``. Documents are right-padded, so the states at real positions never see a
    padding position; ``mask`` is accepted for symmetry and zeroes nothing here.
    """

    def __init__(
        self,
        n_balls: int,
        ball_dim: int,
        phi: str = "identity",
        init: str = "uniform",
        checkpoint_steps: int = 16,
    ) -> None:
        super().__init__()
        if phi not in PHI:
            raise ValueError(f"unknown phi {phi!r}; choose from {sorted(PHI)}")
        if init not in ("uniform", "orthogonal"):
            raise ValueError(f"unknown GRU init {init!r}; choose uniform or orthogonal")
        self.n_balls, self.ball_dim, self.phi, self.init = n_balls, ball_dim, phi, init
        self.checkpoint_steps = checkpoint_steps  # 0: keep every step's tensors for backward
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

    def _planar_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``W^{rz}`` and ``W^g`` with rows and columns in the planar order of :func:`_cell`."""
        n, d = self.n_balls, self.ball_dim
        p_in = _planar_index(n, d).to(self.w_rz.device)  # k planar positions
        p_rz = _planar_index(2 * n, d).to(self.w_rz.device)  # 2k: r balls then z balls
        return self.w_rz[p_rz][:, p_in], self.w_g[p_in][:, p_in]

    def forward(self, e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, n, d = e.shape
        b_rz = self.bias[:2].reshape(2 * n, d).T  # (d, 2n) planar
        b_g = self.bias[2].T  # (d, n)
        w_rz, w_g = self._planar_weights()
        weights = (self.u, w_rz, w_g, b_rz, b_g)
        seg = self.checkpoint_steps
        # θ^w_0 = 0; marked as needing a gradient when training so that the first step and
        # the later ones (whose state does) share one compiled cell
        h = e.new_zeros(b, d, n).requires_grad_(torch.is_grad_enabled())
        if not (seg and torch.is_grad_enabled()):
            return self._steps(h, e, *weights).transpose(2, 3)
        # Gradient checkpointing by segments of ``seg`` steps: only each segment's first state
        # and its words are kept for the backward, which recomputes the segment (input gates
        # included). Memory no longer grows with T (-350 MB at the RCV1 shape) for the cost of
        # one more forward pass, which is the cheap part of the step.
        out = []
        for lo in range(0, t, seg):
            with set_checkpoint_early_stop(False):  # early stop aborts inside compiled code
                part = checkpoint(
                    self._steps, h, e[:, lo : lo + seg], *weights, use_reentrant=False
                )
            out.append(part)
            h = part[:, -1]
        return torch.cat(out, dim=1).transpose(2, 3)  # (B, T, n, d)

    def _steps(
        self,
        h: torch.Tensor,  # (B, d, n) planar state before the first of these steps
        e: torch.Tensor,  # (B, S, n, d) embedded words of these steps
        u: torch.Tensor,
        w_rz: torch.Tensor,
        w_g: torch.Tensor,
        b_rz: torch.Tensor,
        b_g: torch.Tensor,
    ) -> torch.Tensor:
        """Eq. (5) over ``S`` consecutive steps: states ``(B, S, d, n)``, planar."""
        u_rz, u_g = KERNELS.run("gru_input", _input_gates, e, u)  # (S, B, d, 2n|n)
        # One view per step with unbind (its backward is one stack; indexing u[i] in the loop
        # would build and accumulate a full (S, B, ...) gradient at every step: O(S²) traffic).
        # Time-major, so every step's inputs are contiguous with the same strides whatever S
        # is: the compiled cell then specialises on the batch size only.
        h = h.contiguous()
        out = []
        for ur, ug in zip(u_rz.unbind(0), u_g.unbind(0), strict=True):
            h = KERNELS.run("gru_cell", _cell, h, ur, ug, w_rz, w_g, b_rz, b_g, self.phi)
            out.append(h)
        return torch.stack(out, dim=1)  # (B, S, d, n)

    def extra_repr(self) -> str:
        return f"{self.n_balls}x{self.ball_dim}D, phi={self.phi}"


def reference_cell(h: torch.Tensor, e_t: torch.Tensor, gru: HyperbolicGRU) -> torch.Tensor:
    """One step of Eq. (5) as written: ``θ^w_{t-1}, θ^e_t -> θ^w_t``, each ``(B, n, d)``.

    The readable transcription, one line per line of the equation, in the ball-major layout
    with :mod:`hyperim.geometry`'s product operations; slow, and used by the tests to check the
    fast cell of :class:`HyperbolicGRU` (values and gradients). Unlike the fast cell it never
    projects back into the ball, so the two agree while every point stays within
    :data:`~hyperim.geometry.MAX_NORM` of the origin.
    """
    k = gru.n_balls * gru.ball_dim
    w_r, w_z, w_g = gru.w_rz[:k], gru.w_rz[k:], gru.w_g
    u_r, u_z, u_g = gru.u[:k], gru.u[k : 2 * k], gru.u[2 * k :]
    b_r, b_z, b_g = gru.bias
    add, mv = mobius_add, product_matvec  # ⊕ and ⊗ over the product of balls
    # r_t = σ(log0(W^r ⊗ θ^w_{t-1} ⊕ U^r ⊗ θ^e_t ⊕ b^r))
    r = torch.sigmoid(logmap0(add(add(mv(w_r, h), mv(u_r, e_t)), b_r)))
    # z_t = σ(log0(W^z ⊗ θ^w_{t-1} ⊕ U^z ⊗ θ^e_t ⊕ b^z))
    z = torch.sigmoid(logmap0(add(add(mv(w_z, h), mv(u_z, e_t)), b_z)))
    # (W^g diag(r_t)) ⊗ θ^w_{t-1} = exp0(W^g diag(r_t) log0 θ^w_{t-1}), log0/exp0 ball by ball
    w_gh = expmap0(((r * logmap0(h)).flatten(-2) @ w_g.T).unflatten(-1, h.shape[-2:]))
    # θ̃^w_t = ϕ((W^g diag(r_t)) ⊗ θ^w_{t-1} ⊕ U^g ⊗ θ^e_t ⊕ b^g), ϕ applied as exp0∘ϕ∘log0
    cand = add(add(w_gh, mv(u_g, e_t)), b_g)
    fn = PHI[gru.phi]
    cand = cand if fn is None else mobius_fn(fn, cand)
    # θ^w_t = θ^w_{t-1} ⊕ diag(z_t) ⊗ (-θ^w_{t-1} ⊕ θ̃^w_t)
    return add(h, mobius_pointwise(z, add(-h, cand)))


def reference_forward(gru: HyperbolicGRU, e: torch.Tensor) -> torch.Tensor:
    """Eq. (5) over a whole sequence with :func:`reference_cell`: ``(B, T, n, d) -> (B, T, n, d)``.

    Starts from ``θ^w_0 = 0`` and returns every state ``θ^w_1 … θ^w_T``; the slow, readable
    counterpart of ``gru(e)`` (no padding handling, no checkpointing, no projections).
    """
    h, out = e.new_zeros(e.shape[:1] + e.shape[2:]), []
    for e_t in e.unbind(1):
        h = reference_cell(h, e_t, gru)
        out.append(h)
    return torch.stack(out, dim=1)
