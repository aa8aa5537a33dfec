r"""Compiled (numba, serial, ``nogil``) inner loops of the coordinate-descent solvers.

Every kernel updates the rows ``lo:hi`` (columns of its transpose) of a factor ``F`` (n, k) of the
problem ``X (n, m) ~ F @ G`` for a fixed other factor. Rows are independent,
so :mod:`deepnmf.solvers.cd` hands disjoint row ranges to Python worker
threads (the kernels release the GIL); the result does not depend on the
split. numba's own parallel loops are not used: their OpenMP runtime and
torch's hang together in one process.

* :func:`hals_columns` -- Frobenius, the products given: one cyclic pass
  over the components of each row of ``F`` (stored transposed, component
  major), with ``A = G G^T + l2 I`` (k, k) and ``B = X G^T - l1``; the same
  arithmetic as scikit-learn's ``_update_cdnmf_fast`` in the same order, so
  the results are the same to the last bit.
* :func:`masked_hals_rows` -- Frobenius with missing entries: the residual
  of a row is kept in a scratch vector and updated after each coordinate.
* :func:`kl_newton_rows` -- generalised Kullback-Leibler: cyclic coordinate
  descent with projected one-variable Newton steps (Hsieh & Dhillon 2011),
  the row's model ``F[i] @ G`` kept up to date.
"""
from __future__ import annotations

import numpy as np
from numba import njit


#: columns of ``F^T`` handled together by :func:`hals_columns` (their gradients stay in cache)
HALS_BLOCK = 256


@njit(nogil=True, cache=True)
def hals_columns(Ft, A, Bt, perm, active, lo, hi, g, vio, chg):  # pragma: no cover - compiled
    """One HALS pass over columns ``lo:hi`` of ``Ft`` (k, n); returns (projected-gradient l1 norm, squared change).

    ``Ft`` is the factor stored component-major, ``A = G G^T + l2 I`` (k, k),
    ``Bt = G X^T - l1`` (k, n), ``g``, ``vio``, ``chg`` scratch vectors of ``HALS_BLOCK`` in the dtype of ``Ft``.
    Each gradient sums ``A[t, r] Ft[r, i]`` over ``r`` in order, as
    scikit-learn's loop does, but the loop runs over a block of columns for
    every ``(t, r)`` so that it vectorises without reordering any sum.
    """
    k = Ft.shape[0]
    vio[:] = 0.0
    chg[:] = 0.0
    violation = 0.0
    change = 0.0
    for i0 in range(lo, hi, HALS_BLOCK):
        i1 = min(i0 + HALS_BLOCK, hi)
        w = i1 - i0
        for s in range(k):
            t = perm[s]
            if not active[t]:
                continue
            b = Bt[t, i0:i1]  # slices: indices from 0 let the loops vectorise (no wraparound checks)
            for i in range(w):
                g[i] = -b[i]
            for r in range(k):
                a = A[t, r]
                f = Ft[r, i0:i1]
                for i in range(w):
                    g[i] += a * f[i]
            hess = A[t, t]
            f = Ft[t, i0:i1]
            for i in range(w):  # per-lane sums: this loop vectorises too
                old = f[i]
                grad = g[i]
                vio[i] += abs(min(0.0, grad) if old == 0 else grad)
                new = max(old - grad / hess, 0.0) if hess != 0 else old
                f[i] = new
                chg[i] += (new - old) * (new - old)
    for i in range(HALS_BLOCK):
        violation += vio[i]
        change += chg[i]
    return violation, change


@njit(nogil=True, cache=True, fastmath=True)
def masked_hals_rows(X, M, F, G, l1, l2, perm, active, lo, hi, R):  # pragma: no cover - compiled
    """One HALS pass over rows ``lo:hi`` with a mask; returns (0.5 sum M (X - F G)^2 of the rows, change).

    ``R`` is a scratch vector of length m (one per thread).
    """
    k, m = G.shape
    loss = 0.0
    change = 0.0
    for i in range(lo, hi):
        for j in range(m):
            acc = 0.0
            for r in range(k):
                acc += F[i, r] * G[r, j]
            R[j] = M[i, j] * (X[i, j] - acc)
        for s in range(k):
            t = perm[s]
            if not active[t]:
                continue
            num = 0.0
            den = l2
            for j in range(m):
                g = G[t, j] * M[i, j]
                num += R[j] * G[t, j]
                den += g * G[t, j]
            old = F[i, t]
            new = max(old + (num - l1 - l2 * old) / den, 0.0) if den > 0 else old
            if new != old:
                d = new - old
                for j in range(m):
                    R[j] -= d * G[t, j] * M[i, j]
                F[i, t] = new
                change += d * d
        for j in range(m):
            loss += 0.5 * R[j] * R[j]
    return loss, change


@njit(nogil=True, cache=True, fastmath=True)
def kl_newton_rows(X, M, F, G, Gsum, l1, l2, perm, active, n_newton, eps, lo, hi, P, Q, R):  # pragma: no cover
    """Cyclic projected-Newton passes (KL) over rows ``lo:hi``; returns the rows' ``sum M (P - X log P)``.

    ``P`` (length m, one per thread) holds the row's model ``F[i] @ G`` and
    ``Q`` ``X[i] / P`` (kept up to date: one division per entry and update,
    none in the Newton statistics) and ``R`` ``1 / X[i]`` where ``X > 0``;
    ``Gsum[t] = sum_j G[t, j]`` serves when there is no mask (``M`` is then
    a (1, 1) dummy). Each coordinate takes up to ``n_newton`` Newton steps
    ``s = max(-F[i, t], -g / h)``. Rows of the arrays are taken as views so
    that the loops over ``j`` vectorise.
    """
    k, m = G.shape
    masked = M.shape[0] > 1
    value = 0.0
    for i in range(lo, hi):
        x = X[i]
        f = F[i]
        mi = M[i] if masked else M[0]
        for j in range(m):
            P[j] = 0.0
        for r in range(k):
            fr = f[r]
            g_r = G[r]
            for j in range(m):
                P[j] += fr * g_r[j]
        for j in range(m):
            P[j] = max(P[j], eps)
            Q[j] = x[j] / P[j]
            R[j] = 1.0 / x[j] if x[j] > 0 else 0.0
        for s in range(k):
            t = perm[s]
            if not active[t]:
                continue
            gt = G[t]
            for _ in range(n_newton):
                grad = l1 + l2 * f[t]
                hess = l2
                if masked:
                    for j in range(m):
                        q = mi[j] * Q[j]
                        grad += gt[j] * (mi[j] - q)
                        hess += q * q * gt[j] * gt[j] * R[j]
                else:
                    grad += Gsum[t]
                    for j in range(m):
                        q = Q[j] * gt[j]
                        grad -= q
                        hess += q * q * R[j]
                old = f[t]
                if old == 0 and grad >= 0:
                    break
                if hess <= 0:  # no data term bends the function: linear in f[t]
                    if grad <= 0:
                        break
                    d = -old  # increasing: the minimum is at 0
                else:
                    d = max(-old, -grad / hess)
                if d == 0:
                    break
                f[t] = old + d
                for j in range(m):
                    P[j] = max(P[j] + d * gt[j], eps)
                    Q[j] = x[j] / P[j]
                if abs(d) <= 1e-12 * (old + d):
                    break
        for j in range(m):
            w = mi[j] if masked else 1.0
            value += w * (P[j] - x[j] * np.log(P[j])) if x[j] > 0 else w * P[j]
    return value
