"""What the plain and the blocked multiplicative-update schedules share.

:mod:`deepnmf.solvers.mu` (the public solver and the plain loops) and
:mod:`deepnmf.solvers._blocked` (the column-blocked schedule) both build on
this module and on nothing of each other's internals, so the import graph
is a tree: ``mu -> _blocked -> _kernels`` and ``mu -> _kernels``.

Here: the numpy kernel namespace, the problem record, the fused elementwise
pass (the beta-divergence of :mod:`deepnmf.divergences` computed in place,
with the update matrices), the multiplicative step and the stopping rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


class _NumpyKernels:
    """In-place kernels on numpy views of CPU tensors."""

    matmul = staticmethod(lambda a, b, out: np.matmul(a, b, out=out))
    small = staticmethod(lambda a, b: a @ b)
    divide = staticmethod(lambda a, b, out: np.divide(a, b, out=out))
    multiply = staticmethod(lambda a, b, out: np.multiply(a, b, out=out))
    # the scalar in the array's dtype: a Python float makes numpy take a loop 3x slower
    floor = staticmethod(lambda a, eps: np.maximum(a, a.dtype.type(eps), out=a))
    power = staticmethod(lambda a, p, out: np.power(a, p, out=out))
    log = staticmethod(lambda a, out: np.log(a, out=out))
    reciprocal = staticmethod(lambda a, out: np.reciprocal(a, out=out))

    @staticmethod
    def view(t: torch.Tensor) -> np.ndarray:
        return t.numpy()

    @staticmethod
    def dot(a, b) -> float:
        """Sum of elementwise products (float64 for small arrays, BLAS dot for large ones)."""
        if a.size <= 2_000_000:
            return float(np.dot(a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)))
        return float(np.dot(a.reshape(-1), b.reshape(-1)))

    @staticmethod
    def total(a) -> float:
        """Sum (numpy's pairwise summation in the array's own dtype: no float64 copy)."""
        return float(a.sum())

    @staticmethod
    def empty_like(a, shape=None):
        return np.empty(shape or a.shape, dtype=a.dtype)


@dataclass
class _Problem:
    """Everything constant during one run of multiplicative updates (views for the kernels)."""

    k: Any  # kernel namespace
    X: Any  # data (masked entries zeroed)
    M: Any  # mask or None
    beta: float
    gamma: float
    eps: float
    l1_W: float
    l2_W: float
    l1_H: float
    l2_H: float
    fixed: Any  # boolean index of fixed dictionary rows or None
    const: float  # data-only part of the objective

    def penalty(self, W, H) -> float:
        k = self.k
        value = 0.0
        if self.l1_W:
            value += self.l1_W * k.total(W)
        if self.l2_W:
            value += 0.5 * self.l2_W * k.dot(W, W)
        if self.l1_H:
            value += self.l1_H * k.total(H)
        if self.l2_H:
            value += 0.5 * self.l2_H * k.dot(H, H)
        return value


def _elementwise(k, beta: float, eps: float, X, M, WH, N, Q, S, with_loss: bool) -> float:
    """The elementwise part of :func:`_prepare` on (a block of) the arrays; divergence minus its constant."""
    if beta < 2:
        k.floor(WH, eps)
    loss = math.nan
    if beta == 2.0:  # masked Frobenius (the unmasked case never forms WH)
        k.multiply(WH, M, Q)
        if with_loss:
            loss = -k.dot(X, WH) + 0.5 * k.dot(Q, WH)
    elif beta == 1.0:  # N may share WH's buffer: the log and the sums come first
        if with_loss:
            k.log(WH, S)
            sum_model = k.dot(M, WH) if M is not None else k.total(WH)
            loss = -k.dot(X, S) + sum_model
        k.divide(X, WH, N)
    elif beta == 0.0:
        k.reciprocal(WH, Q)  # 1 / WH
        k.multiply(X, Q, N)  # X / WH
        if with_loss:
            k.log(WH, S)
            log_model = k.dot(M, S) if M is not None else k.total(S)
            loss = k.total(N) + log_model
        k.multiply(N, Q, N)  # X / WH^2
        if M is not None:
            k.multiply(Q, M, Q)
    elif beta < 2:  # WH is floored: the division is safe
        k.power(WH, beta - 1.0, Q)  # WH^(beta-1)
        k.divide(Q, WH, N)
        k.multiply(N, X, N)  # X * WH^(beta-2)
        if M is not None:
            k.multiply(Q, M, Q)
        if with_loss:
            loss = ((beta - 1.0) * k.dot(Q, WH) - beta * k.dot(X, Q)) / (beta * (beta - 1.0))
    else:  # beta > 2: WH is not floored and may hold zeros, so no division (0 / 0 made NaN here)
        k.power(WH, beta - 2.0, N)  # WH^(beta-2)
        k.multiply(N, WH, Q)  # WH^(beta-1)
        k.multiply(N, X, N)  # X * WH^(beta-2)
        if M is not None:
            k.multiply(Q, M, Q)
        if with_loss:
            loss = ((beta - 1.0) * k.dot(Q, WH) - beta * k.dot(X, Q)) / (beta * (beta - 1.0))
    return loss


def _update(k, F, num, den, l1: float, l2: float, gamma: float, eps: float, fixed=None, *, into_den=False) -> None:
    """``F *= (num / max(den + l1 + l2 F, eps)) ** gamma`` in place.

    The ratio overwrites ``num`` (a fresh array), or ``den`` with
    ``into_den=True`` (then ``den`` must be a fresh array of ``F``'s shape and
    ``num`` is left intact); ``den`` may otherwise be a broadcastable row or
    column (KL's plain sums).
    """
    if l1 or l2:
        den = den + l1 + l2 * F
    k.floor(den, eps)
    ratio = den if into_den else num
    k.divide(num, den, ratio)
    if gamma != 1.0:
        k.power(ratio, gamma, ratio)
    if fixed is not None:
        ratio[fixed] = 1.0
    k.multiply(F, ratio, F)


def _stop(losses: list[float], n_iter: int, tol: float) -> bool:
    """scikit-learn's criterion, checked every 10 iterations."""
    if tol <= 0 or n_iter % 10 or len(losses) < 11:
        return False
    err = lambda v: math.sqrt(max(2.0 * v, 0.0))  # noqa: E731
    return (err(losses[-11]) - err(losses[-1])) / max(err(losses[0]), 1e-300) < tol

