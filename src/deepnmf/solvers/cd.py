r"""Coordinate-descent solvers: HALS for the Frobenius loss, projected Newton for Kullback-Leibler.

Orientation: ``X`` (n_samples, n_features) ~ ``W`` (n_samples, k) @ ``H`` (k, n_features).

* **Frobenius** (``beta=2``): hierarchical alternating least squares, i.e.
  cyclic coordinate descent over the columns of ``W`` and the rows of ``H``
  (Cichocki & Phan 2009), scikit-learn's ``solver="cd"``. Each coordinate is
  minimised exactly, so the objective never rises. The products ``X H^T``
  and ``X^T W`` are formed once per factor update; ``inner`` extra passes
  reuse them (Gillis & Glineur 2012, accelerated HALS) while each pass still
  moves the factor by more than a tenth of the first one.
* **Kullback-Leibler** (``beta=1``): cyclic coordinate descent with
  projected one-variable Newton steps (Hsieh & Dhillon 2011), the model of
  each row kept up to date; no ``(n, m)`` product is formed. A Newton step can
  overshoot, so the objective is not guaranteed to fall at every step; it
  does in practice (tested) and reaches a given objective in far fewer
  passes than multiplicative updates.

Both take L1/L2 penalties (scikit-learn's scaling, see
:mod:`deepnmf.models.nmf`), masks of missing entries and dictionary rows
held fixed. On CPU the passes run in compiled kernels
(:mod:`deepnmf.solvers._cd_kernels`) over row slices on worker threads;
elsewhere (CUDA) in torch (:mod:`deepnmf.solvers._cd_torch`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from deepnmf._threads import default_workers, run_parallel, slices
from deepnmf.callbacks import Callback, Clock, report_epoch
from deepnmf.divergences import EPS
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.solvers import _cd_torch
from deepnmf.solvers._kernels import _stop
from deepnmf.solvers.mu import MUResult, _data_constant, _validate

__all__ = ["coordinate_descent", "inner_passes"]

#: fewest row-by-component products (rows x k x k or rows x m x k) per worker thread
MIN_WORK_PER_THREAD = 1 << 18
#: an extra HALS pass is taken while it moves the factor by more than this share of the first pass
INNER_DECAY = 0.1


def inner_passes(n_rows: int, n_other: int, k: int, alpha: float = 0.5) -> int:
    """Passes per factor update of accelerated HALS (Gillis & Glineur 2012): ``1 + alpha * rho``.

    ``rho`` is the cost of the products ``X G^T`` and ``G G^T`` of a factor
    with ``n_rows`` rows (``n_other`` the other dimension of ``X``) in units
    of one pass over the factor.
    """
    rho = 1.0 + (n_rows * n_other * k + n_other * k * k) / (n_rows * (k * k + k))
    return max(1, int(1 + alpha * rho))


@dataclass
class _Setup:
    """What one run needs besides the factors (numpy views on CPU)."""

    beta: float
    max_iter: int
    tol: float
    l1: tuple[float, float]  # (W, H)
    l2: tuple[float, float]
    update: tuple[bool, bool]
    active_H: np.ndarray  # bool (k,): rows of H that are learned
    perm: Callable[[], np.ndarray]
    inner: Any  # None (auto), or passes per factor update
    n_newton: int
    eps: float
    const: float
    workers: int
    hook: Callable[[int, float], bool] | None


def coordinate_descent(
    X: torch.Tensor,
    W: torch.Tensor,
    H: torch.Tensor,
    *,
    beta: float = 2.0,
    max_iter: int = 200,
    tol: float = 1e-4,
    l1_reg_W: float = 0.0,
    l2_reg_W: float = 0.0,
    l1_reg_H: float = 0.0,
    l2_reg_H: float = 0.0,
    update_W: bool = True,
    update_H: bool = True,
    shuffle: bool = False,
    random_state: np.random.RandomState | None = None,
    fixed_components: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    inner: int | None = 1,
    n_newton: int = 1,
    eps: float = EPS,
    callback: Callback | None = None,
    backend: str = "auto",
    n_workers: int | None = None,
) -> MUResult:
    r"""Run coordinate descent from ``W``, ``H`` (both updated in place).

    Parameters
    ----------
    X : torch.Tensor [shape=(n_samples, n_features)]
        Nonnegative data (validated by the caller).
    W : torch.Tensor [shape=(n_samples, n_components)]
    H : torch.Tensor [shape=(n_components, n_features)]
    beta : {2.0, 1.0}
        Frobenius (HALS) or Kullback-Leibler (projected Newton).
    max_iter : int
        Maximum number of iterations (an iteration updates ``W`` then ``H``).
    tol : float
        Frobenius without a mask: scikit-learn's rule, stop when the
        projected-gradient norm of an iteration falls below ``tol`` times
        that of the first. Otherwise the rule of
        :func:`deepnmf.solvers.mu.multiplicative_updates`. 0 runs ``max_iter``.
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalties :math:`l_1 \|F\|_1 + \tfrac{l_2}{2} \|F\|_F^2` per factor.
    update_W, update_H : bool
        Which factors to learn.
    shuffle : bool
        Visit the components in a random order (drawn from ``random_state``) at
        every factor update.
    random_state : numpy.random.RandomState, optional
        Source of the orders (as scikit-learn's, so the same seed gives the
        same orders).
    fixed_components : torch.Tensor [shape=(n_components,), bool], optional
        Rows of ``H`` held fixed.
    mask : torch.Tensor [shape=(n_samples, n_features)], optional
        1 observed, 0 missing.
    inner : int or None
        HALS passes per factor update: 1 is scikit-learn's cd, None chooses
        :func:`inner_passes` (accelerated HALS). Unmasked Frobenius only.
    n_newton : int
        Newton steps per coordinate (KL); one per pass reached the targets of
        ``benchmarks/bench_nmf.py`` in as many passes as two, at 0.6x the time.
    eps : float
        Floor of the model (KL).
    callback : callable, optional
        Gets a :class:`deepnmf.callbacks.EpochInfo` per iteration; True stops.
    backend : {"auto", "numpy", "torch"}
        ``"auto"``: compiled kernels on CPU, torch elsewhere.
    n_workers : int, optional
        Threads of the CPU kernels (default: torch's thread count).

    Returns
    -------
    MUResult
        ``W``, ``H``, ``n_iter``, ``losses`` (objective at the start and after
        every iteration) and ``divergence`` of the result.
    """
    _validate(X, W, H, mask, fixed_components)
    beta = float(beta)
    if beta not in (1.0, 2.0):
        raise ParameterError(f"coordinate descent handles beta 2 (Frobenius) and 1 (KL), got beta={beta}")
    if backend not in ("auto", "numpy", "torch"):
        raise ParameterError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    compiled = X.device.type == "cpu" and backend != "torch"
    if backend == "numpy" and not compiled:
        raise ParameterError("backend='numpy' only works for CPU tensors")
    M = _check_mask(mask, X)
    Xm = X if M is None else X * M
    k = H.shape[0]
    active = np.ones(k, dtype=bool)
    if fixed_components is not None:
        active &= ~fixed_components.detach().cpu().numpy().astype(bool)
    rng = random_state if random_state is not None else np.random.RandomState(0)
    clock = Clock()
    setup = _Setup(
        beta, max_iter, tol, (l1_reg_W, l1_reg_H), (l2_reg_W, l2_reg_H), (update_W, update_H), active,
        (lambda: rng.permutation(k)) if shuffle else (lambda: np.arange(k)), inner, int(n_newton), eps,
        0.0 if beta == 2.0 and M is not None else _data_constant(Xm, M, beta, eps), n_workers or default_workers(),
        None if callback is None else (lambda i, loss: report_epoch(callback, i, max_iter, loss, clock)),
    )
    ops = _CompiledOps(setup) if compiled else _TorchOps(setup)
    Ht = H.T.contiguous()  # (m, k): the rows of the H update
    if beta == 2.0 and M is None:
        losses, n_iter = _run_hals(Xm, W, Ht, setup, ops)
    else:
        losses, n_iter = _run_rows(Xm, M, W, Ht, setup, ops)
    H.copy_(Ht.T)
    return MUResult(W, H, n_iter, losses, losses[-1] - _penalty(setup, W, H))


def _check_mask(mask, X):
    if mask is None:
        return None
    M = mask.to(dtype=X.dtype, device=X.device).contiguous()
    if bool(((M != 0) & (M != 1)).any()):
        raise DataError("mask must contain only 0 (missing) and 1 (observed)")
    if not bool(M.any()):
        raise DataError("mask marks every entry as missing; nothing to fit")
    return M


def _penalty(s: _Setup, W: torch.Tensor, H: torch.Tensor) -> float:
    value = 0.0
    for F, l1, l2 in ((W, s.l1[0], s.l2[0]), (H, s.l1[1], s.l2[1])):
        if l1:
            value += l1 * float(F.sum(dtype=torch.float64))
        if l2:
            value += 0.5 * l2 * float((F.double() ** 2).sum())
    return value


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()))


class _CompiledOps:
    """CPU passes: the numba kernels on numpy views, over row slices on worker threads."""

    def __init__(self, s: _Setup):
        from deepnmf.solvers import _cd_kernels  # noqa: PLC0415 - numba loads on first use

        self.s, self.kern = s, _cd_kernels

    def _split(self, n_rows: int, work_per_row: int) -> list[tuple[int, int]]:
        parts = max(1, min(self.s.workers, n_rows * work_per_row // MIN_WORK_PER_THREAD))
        return slices(n_rows, parts)

    def hals(self, Ft, A, Bt, perm, active):
        Fv, Av, Bv = Ft.numpy(), A.numpy(), Bt.numpy()
        parts = self._split(Fv.shape[1], Fv.shape[0] ** 2)
        out = run_parallel(self.kern.hals_columns, [
            (Fv, Av, Bv, perm, active, a, b, *np.zeros((3, self.kern.HALS_BLOCK), Fv.dtype)) for a, b in parts])
        return sum(o[0] for o in out), sum(o[1] for o in out)

    def masked_hals(self, X, M, F, G, l1, l2, perm, active):
        Xv, Mv, Fv, Gv = X.numpy(), M.numpy(), F.numpy(), G.contiguous().numpy()
        parts = self._split(Fv.shape[0], Gv.size)
        dt = Xv.dtype.type  # scalars in the data's dtype: the loops stay in one precision and vectorise
        out = run_parallel(self.kern.masked_hals_rows, [
            (Xv, Mv, Fv, Gv, dt(l1), dt(l2), perm, active, a, b, np.empty(Gv.shape[1], Xv.dtype))
            for a, b in parts])
        return math.fsum(o[0] for o in out), sum(o[1] for o in out)

    def kl_newton(self, X, M, F, G, l1, l2, perm, active):
        Xv, Fv, Gv = X.numpy(), F.numpy(), G.contiguous().numpy()
        Mv = np.ones((1, 1), Xv.dtype) if M is None else M.numpy()
        gsum = Gv.sum(1)
        parts = self._split(Fv.shape[0], Gv.size)
        dt = Xv.dtype.type  # scalars in the data's dtype keep the kernel's loops in one precision (they vectorise)
        out = run_parallel(self.kern.kl_newton_rows, [
            (Xv, Mv, Fv, Gv, gsum, dt(l1), dt(l2), perm, active, self.s.n_newton, dt(self.s.eps), a, b,
             *np.empty((3, Gv.shape[1]), Xv.dtype)) for a, b in parts])
        return math.fsum(out)


class _TorchOps:
    """Device-agnostic passes in torch (CUDA)."""

    def __init__(self, s: _Setup):
        self.s = s

    @staticmethod
    def hals(Ft, A, Bt, perm, active):
        return _cd_torch.hals(Ft.T, A, Bt.T, perm, active)

    masked_hals = staticmethod(_cd_torch.masked_hals)

    def kl_newton(self, X, M, F, G, l1, l2, perm, active):
        return _cd_torch.kl_newton(X, M, F, G, l1, l2, perm, active, self.s.n_newton, self.s.eps)


def _hals_update(ops, s: _Setup, Ft, gram, cross, l1, l2, active, n_inner) -> float:
    """Passes over ``Ft`` (k, rows) for ``A = gram + l2 I``, ``B = cross - l1``; the first pass's violation."""
    A = gram.clone()
    if l2:
        A.diagonal().add_(l2)
    B = cross - l1 if l1 else cross
    violation, first = ops.hals(Ft, A, B, s.perm(), active)
    for _ in range(n_inner - 1):
        _, change = ops.hals(Ft, A, B, s.perm(), active)
        if change <= INNER_DECAY * first:
            break
    return violation


def _run_hals(X, W, Ht, s: _Setup, ops) -> tuple[list[float], int]:
    """Frobenius without a mask: the objective ``0.5||X||^2 - <H, W^T X> + 0.5 <W^T W, H H^T>`` from the products.

    Both factors are kept component-major, ``W^T`` (k, n) and ``H`` (k, m),
    so the passes and the four products all read contiguous rows.
    """
    n, m = X.shape
    k = W.shape[1]
    inner_W = s.inner or inner_passes(n, m, k)
    inner_H = s.inner or inner_passes(m, n, k)
    all_active = np.ones(k, dtype=bool)
    Wt, H = W.T.contiguous(), Ht.T.contiguous()
    HHt, HXt = H @ H.T, H @ X.T  # (k, k), (k, n)
    losses = [s.const - _dot(Wt, HXt) + 0.5 * _dot(Wt @ Wt.T, HHt) + _penalty(s, Wt, H)]
    violation_init = None
    n_iter = 0
    for n_iter in range(1, s.max_iter + 1):
        violation = 0.0
        if s.update[0]:
            if n_iter > 1 and s.update[1]:
                HXt = H @ X.T
            violation += _hals_update(ops, s, Wt, HHt, HXt, s.l1[0], s.l2[0], all_active, inner_W)
        WtW = Wt @ Wt.T
        if s.update[1]:
            WtX = Wt @ X  # (k, m)
            violation += _hals_update(ops, s, H, WtW, WtX, s.l1[1], s.l2[1], s.active_H, inner_H)
            HHt = H @ H.T
            loss = s.const - _dot(H, WtX) + 0.5 * _dot(WtW, HHt)
        else:
            loss = s.const - _dot(Wt, HXt) + 0.5 * _dot(WtW, HHt)
        losses.append(loss + _penalty(s, Wt, H))
        if s.hook is not None and s.hook(n_iter, losses[-1]):
            break
        violation_init = violation if violation_init is None else violation_init
        if violation_init == 0 or (s.tol > 0 and violation / violation_init <= s.tol):
            break
    W.copy_(Wt.T)
    Ht.copy_(H.T)
    return losses, n_iter


def _run_rows(X, M, W, Ht, s: _Setup, ops) -> tuple[list[float], int]:
    """Masked Frobenius or KL: row passes over ``W`` with ``H``, then over ``H^T`` with ``W^T``."""
    k = W.shape[1]
    Xt = X.T.contiguous()
    Mt = None if M is None else M.T.contiguous()
    all_active = np.ones(k, dtype=bool)

    if s.beta == 1.0 and s.update[0]:
        _kl_rescale(X, M, W, Ht)

    def update(Xa, Ma, F, G, which, active):
        if s.beta == 2.0:
            return ops.masked_hals(Xa, Ma, F, G, s.l1[which], s.l2[which], s.perm(), active)[0]
        return ops.kl_newton(Xa, Ma, F, G, s.l1[which], s.l2[which], s.perm(), active)

    losses = [s.const + _initial_value(X, M, W, Ht, s) + _penalty(s, W, Ht.T)]
    n_iter = 0
    for n_iter in range(1, s.max_iter + 1):
        if s.update[0]:
            value = update(X, M, W, Ht.T, 0, all_active)
        if s.update[1]:
            value = update(Xt, Mt, Ht, W.T, 1, s.active_H)
        losses.append(s.const + value + _penalty(s, W, Ht.T))
        if (s.hook is not None and s.hook(n_iter, losses[-1])) or _stop(losses, n_iter, s.tol):
            break
    return losses, n_iter


def _kl_rescale(X, M, W, Ht) -> None:
    """Scale ``W`` by ``sum X / sum W H`` (over observed entries), the best scale of the start for KL.

    Coordinate Newton steps from a start whose scale is far off (nndsvda's
    can be) take many passes just to shrink it; one closed-form scale
    removes that.
    """
    model_sum = float((W.sum(0) @ Ht.T.sum(1)) if M is None else ((W @ Ht.T) * M).sum())
    data_sum = float(X.sum())
    if model_sum > 0 and data_sum > 0:
        W.mul_(data_sum / model_sum)


def _initial_value(X, M, W, Ht, s: _Setup) -> float:
    """The objective's model part at the start (what the passes return afterwards)."""
    P = W @ Ht.T
    if s.beta == 2.0:
        R = M * (X - P)
        return 0.5 * float((R.double() ** 2).sum())
    P = P.clamp(min=s.eps)
    terms = P - X * torch.where(X > 0, torch.log(P), torch.zeros_like(P))
    return float((terms if M is None else terms * M).sum(dtype=torch.float64))
