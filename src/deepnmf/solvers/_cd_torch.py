"""Torch versions of the coordinate-descent passes (CUDA, or CPU with ``backend="torch"``).

Same updates as the compiled kernels of :mod:`deepnmf.solvers._cd_kernels`,
vectorised over the rows of the factor: one component at a time, all rows
at once (a matrix-vector product per component for HALS; a few passes over
the ``(n, m)`` residual or model per component with a mask or for KL).
Every function updates ``F`` (n, k) in place for ``X (n, m) ~ F @ G``.
"""
from __future__ import annotations

import torch


def hals(F: torch.Tensor, A: torch.Tensor, B: torch.Tensor, perm, active) -> tuple[float, float]:
    """One HALS pass with ``A = G G^T + l2 I`` (k, k), ``B = X G^T - l1`` (n, k): (violation, squared change)."""
    violation = torch.zeros((), dtype=torch.float64, device=F.device)
    change = torch.zeros((), dtype=torch.float64, device=F.device)
    for t in perm:
        if not active[t]:
            continue
        grad = F @ A[t] - B[:, t]  # (n,)
        old = F[:, t].clone()
        pg = torch.where(old == 0, grad.clamp(max=0), grad)
        violation += pg.abs().sum(dtype=torch.float64)
        hess = A[t, t]
        if hess != 0:
            F[:, t] = (old - grad / hess).clamp_(min=0)
            change += ((F[:, t] - old) ** 2).sum(dtype=torch.float64)
    return float(violation), float(change)


def masked_hals(X, M, F, G, l1: float, l2: float, perm, active) -> tuple[float, float]:
    """One HALS pass with missing entries (``M`` 0/1): (0.5 sum M (X - F G)^2 after the pass, change)."""
    R = M * (X - F @ G)  # (n, m) masked residual
    change = 0.0
    for t in perm:
        if not active[t]:
            continue
        g = G[t]
        den = M @ (g * g) + l2  # (n,)
        old = F[:, t].clone()
        step = (R @ g - l1 - l2 * old) / den.clamp(min=torch.finfo(F.dtype).tiny)
        new = torch.where(den > 0, (old + step).clamp(min=0), old)
        d = new - old
        R -= M * (d[:, None] * g[None, :])
        F[:, t] = new
        change += float((d * d).sum(dtype=torch.float64))
    return 0.5 * float((R * R).sum(dtype=torch.float64)), change


def kl_newton(X, M, F, G, l1: float, l2: float, perm, active, n_newton: int, eps: float) -> float:
    """Cyclic projected-Newton passes for KL; returns ``sum M (P - X log P)`` at the new ``F``."""
    P = (F @ G).clamp_(min=eps)  # (n, m) model
    Mx = X if M is None else M * X
    gsum = G.sum(1) if M is None else None
    for t in perm:
        if not active[t]:
            continue
        g_t = G[t]
        base = gsum[t] if M is None else M @ g_t  # (n,) or scalar
        for _ in range(n_newton):
            q = Mx / P
            grad = base + l1 + l2 * F[:, t] - q @ g_t
            hess = (q / P) @ (g_t * g_t) + l2
            old = F[:, t]
            newton = torch.maximum(-old, -grad / hess.clamp(min=torch.finfo(F.dtype).tiny))
            # no data term bends the function (hess 0): linear, so to 0 when increasing
            d = torch.where(hess > 0, newton, torch.where(grad > 0, -old, torch.zeros_like(old)))
            F[:, t] = old + d
            P.add_(d[:, None] * g_t[None, :]).clamp_(min=eps)
    logP = torch.where(X > 0, torch.log(P), torch.zeros_like(P))
    terms = P - X * logP
    return float((terms if M is None else terms * M).sum(dtype=torch.float64))
