r"""Online multiplicative updates for beta-divergences (Lefèvre, Bach & Févotte 2011), scikit-learn's ``MiniBatchNMF``.

Orientation: a minibatch ``X`` (batch, n_features) ~ ``W`` (batch, k) @ ``H`` (k, n_features).

For a minibatch the activations take one multiplicative step (or are solved
afresh, :func:`solve_activations`); the dictionary then follows the running
sufficient statistics

.. math::

    A \leftarrow \rho A + H^{1/\gamma} \odot N, \quad
    B \leftarrow \rho B + D, \quad H = (A / B)^{\gamma}

with ``N``, ``D`` the numerator and denominator of the multiplicative update
of ``H`` on the minibatch and ``rho`` the forgetting factor. With ``rho = 0``
and the whole data as the batch this is the batch multiplicative update.

Masks of missing entries weight every matrix by ``M``; dictionary rows
marked fixed are never changed. Plain torch: any device. Unlike
scikit-learn, factors below float64's eps are not set to zero for
``beta < 1`` (deepnmf's batch multiplicative updates do not either, and the
two must agree).
"""
from __future__ import annotations

import torch

from deepnmf.divergences import beta_divergence

#: float64 machine epsilon: the floor of denominators and of the model (scikit-learn's)
EPSILON = float(torch.finfo(torch.float64).eps)


def _model_terms(X, W, H, beta: float, M):
    """``(X * WH^(beta-2), WH^(beta-1))`` masked; the second is None for KL (a plain sum)."""
    WH = W @ H
    if beta < 2:
        WH = WH.clamp_min(EPSILON)
    if beta == 2.0:
        return (X if M is None else X * M), (WH if M is None else WH * M)
    num = X * WH ** (beta - 2.0) if beta != 1.0 else X / WH
    if M is not None:
        num = num * M
    den = None if beta == 1.0 and M is None else (WH ** (beta - 1.0) if beta != 1.0 else torch.ones_like(WH))
    if den is not None and M is not None:
        den = den * M
    return num, den


def update_activations(X, W, H, *, beta: float, gamma: float, l1: float, l2: float, mask=None) -> torch.Tensor:
    """One multiplicative step of ``W`` (batch, k), in place; returns ``W``."""
    num, den = _model_terms(X, W, H, beta, mask)
    numerator = num @ H.T
    denominator = H.sum(1)[None, :].expand_as(W).clone() if den is None else den @ H.T
    if l1:
        denominator = denominator + l1
    if l2:
        denominator = denominator + l2 * W
    denominator[denominator == 0] = EPSILON
    delta = numerator / denominator
    if gamma != 1.0:
        delta = delta**gamma
    W.mul_(delta)
    return W


def update_dictionary(X, W, H, A, B, *, beta: float, gamma: float, l1: float, l2: float, rho: float,
                      mask=None, fixed=None) -> torch.Tensor:
    """One online step of ``H`` (k, n_features) with statistics ``A``, ``B`` (all in place); returns ``H``."""
    num, den = _model_terms(X, W, H, beta, mask)
    numerator = W.T @ num
    if den is None:
        w_sum = W.sum(0)
        w_sum[w_sum == 0] = 1.0
        denominator = w_sum[:, None].expand_as(H).clone()
    else:
        denominator = W.T @ den
    if l1:
        denominator = denominator + l1
    if l2:
        denominator = denominator + l2 * H
    denominator[denominator == 0] = EPSILON
    old = None if fixed is None else H[fixed].clone()
    Hg = H ** (1.0 / gamma) if gamma != 1.0 else H
    A.mul_(rho).add_(numerator * Hg)
    B.mul_(rho).add_(denominator)
    H.copy_(A / B)
    if gamma != 1.0:
        H.pow_(gamma)
    if old is not None:
        H[fixed] = old
    return H


def solve_activations(X, H, *, beta: float, gamma: float, l1: float, l2: float, max_iter: int, tol: float,
                      mask=None) -> torch.Tensor:
    """Activations (batch, k) of ``X`` for a fixed ``H`` by multiplicative steps from a constant start.

    Stops when the relative change ``||W - W_prev|| / ||W||`` of a step is at
    most ``tol`` (scikit-learn's rule for ``MiniBatchNMF``).
    """
    k = H.shape[0]
    mean = float(X.mean()) if mask is None else float((X * mask).sum() / mask.sum().clamp_min(1))
    W = torch.full((X.shape[0], k), (max(mean, 0.0) / k) ** 0.5, dtype=X.dtype, device=X.device)
    previous = W.clone()
    for _ in range(max_iter):
        update_activations(X, W, H, beta=beta, gamma=gamma, l1=l1, l2=l2, mask=mask)
        change = float(torch.linalg.norm(W - previous) / torch.linalg.norm(W).clamp_min(1e-300))
        if tol > 0 and change <= tol:
            break
        previous.copy_(W)
    return W


def batch_cost(X, W, H, *, beta: float, l1_W: float, l2_W: float, l1_H: float, l2_H: float, mask=None) -> float:
    """scikit-learn's minibatch cost: (divergence + penalties) / batch size (its L2 terms carry no 1/2)."""
    value = float(beta_divergence(X, W @ H, beta, mask=mask, eps=EPSILON))
    value += l1_W * float(W.sum()) + l1_H * float(H.sum()) + l2_W * float((W**2).sum()) + l2_H * float((H**2).sum())
    return value / X.shape[0]
