r"""Column-blocked, multi-threaded multiplicative updates for CPU arrays.

The plain schedule of one iteration streams the whole ``(n, m)`` data matrix
through memory several times: ``W @ H``, the elementwise passes, ``N @ H.T``,
again ``W @ H``... For a 513 x 10000 float32 matrix each pass moves 20 MB,
more than the cache holds. Here the iteration is reorganised around column
blocks of ``X`` (about 1 MB each):

* the dictionary update is column-wise: the columns ``j`` of ``H`` need only
  the columns ``j`` of ``X`` and of ``W @ H``, plus ``W``;
* the activation update needs ``N @ H.T`` (``N`` the numerator matrix at the
  new ``H``), a sum over column blocks.

So one sweep over the blocks updates ``H[:, J]``, forms the model of the block
at the new ``H`` (which gives the block's share of the objective) and adds the
block's share to the products the next ``W`` update needs. Every block is read
once per iteration and stays in cache for its four small products and its
elementwise passes. Worker threads (numpy releases the GIL), each with its
own scratch buffers, take the blocks one at a time from a shared queue while
BLAS runs single-threaded: this avoids BLAS's idle worker threads spinning on
the cores that the elementwise passes need, and a worker on a busier core
simply takes fewer blocks. Each block's partial sums are kept apart and added
in block order, so results do not depend on the thread schedule.

The arithmetic is the one of :func:`deepnmf.solvers.mu.multiplicative_updates`
(same update order: ``W`` then ``H``); only the order of summation differs.
The data are copied once into contiguous blocks (a copy of ``X``), except
for Frobenius, whose block products read views.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from deepnmf._threads import blas_single_thread, default_workers, run_parallel, slices
from deepnmf.solvers._kernels import _elementwise, _NumpyKernels, _stop, _update

#: target size of one column block of X in bytes
BLOCK_BYTES = 1 << 20
#: narrowest block (narrower ones make the block products inefficient)
MIN_BLOCK_COLUMNS = 64
#: widest block
MAX_BLOCK_COLUMNS = 2048
#: fewest entries of X per worker thread (below, waking a worker costs more than it saves)
MIN_ENTRIES_PER_WORKER = 1 << 15
#: Frobenius without a mask uses the blocked schedule from this many entries of X on (and when X
#: has no more rows than columns); below, the Gram-matrix loop with threaded BLAS was as fast or faster
MIN_ENTRIES_FROBENIUS = 1 << 22


def use_blocked_gram(shape: tuple[int, int], n_workers: int | None) -> bool:
    """Whether Frobenius without a mask should run blocked (else the plain Gram-matrix loop).

    On tall data the column blocks would accumulate a tall ``X H^T`` (a
    row-blocked variant measured no faster than the Gram loop); on small data
    the Gram loop's few products beat the sweep's bookkeeping. An explicit
    ``n_workers`` always selects the blocked schedule.
    """
    n, m = shape
    return n_workers is not None or (n <= m and n * m >= MIN_ENTRIES_FROBENIUS)


def column_blocks(m: int, n: int, itemsize: int) -> list[tuple[int, int]]:
    """Split ``m`` columns of ``n`` rows into nearly equal blocks of about ``BLOCK_BYTES``.

    Returns
    -------
    list of (start, stop)
        Contiguous, non-empty column ranges covering ``range(m)`` in order.
    """
    width = int(np.clip(BLOCK_BYTES // max(n * itemsize, 1), MIN_BLOCK_COLUMNS, MAX_BLOCK_COLUMNS))
    if width >= 32:
        width -= width % 16
    return slices(m, math.ceil(m / width))


class _WorkerKernels(_NumpyKernels):
    """numpy kernels of one worker: the model floor uses a preallocated array of eps.

    ``np.maximum`` with a scalar takes a loop several times slower than with
    an array operand on the machines we measured, so large floors compare
    against a flat buffer of eps reshaped to the operand's shape. Whether the
    objective's dots run in float64 is decided once for the whole problem
    (the blocks are small even when the problem is not).
    """

    def __init__(self, eps: float, size: int, dtype, exact: bool):
        self._eps = np.full(size, eps, dtype=dtype)
        self._exact = exact

    def floor(self, a: np.ndarray, eps: float) -> np.ndarray:
        if a.flags.c_contiguous and 4096 <= a.size <= self._eps.size:
            return np.maximum(a, self._eps[: a.size].reshape(a.shape), out=a)
        return np.maximum(a, a.dtype.type(eps), out=a)

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        """Sum of elementwise products: float64 on small problems, BLAS in the data's dtype on large ones."""
        if self._exact:
            return float(np.dot(a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)))
        return float(np.dot(a.reshape(-1), b.reshape(-1)))

    @staticmethod
    def total(a: np.ndarray) -> float:
        return float(a.sum(dtype=np.float64)) if a.size <= 65536 else float(a.sum())


class BlockedSolver:
    """Holds the blocked data and the per-worker scratch buffers of one run.

    Parameters
    ----------
    p : deepnmf.solvers._kernels._Problem
        The problem (numpy views; ``p.X`` already masked).
    W : numpy.ndarray [shape=(n_samples, n_components)]
    H : numpy.ndarray [shape=(n_components, n_features)]
        Factors, updated in place.
    n_workers : int
        Worker threads.
    """

    def __init__(self, p, W: np.ndarray, H: np.ndarray, n_workers: int):
        self.p, self.W, self.H = p, W, H
        n, m = p.X.shape
        self.blocks = column_blocks(m, n, p.X.itemsize)
        self.n_workers = max(1, min(n_workers, len(self.blocks)))
        exact = p.X.size <= 2_000_000
        self.frobenius = p.beta == 2.0 and p.M is None
        widest = max(b - a for a, b in self.blocks)
        self.kernels = [_WorkerKernels(p.eps, n * widest, p.X.dtype, exact) for _ in range(self.n_workers)]
        # contiguous copies of the blocks speed up the elementwise passes; Frobenius has none, views do
        block = (lambda r: p.X[:, r[0]:r[1]]) if self.frobenius else (lambda r: np.ascontiguousarray(p.X[:, r[0]:r[1]]))
        self.Xb = {r: block(r) for r in self.blocks}
        self.Mb = None if p.M is None else {r: np.ascontiguousarray(p.M[:, r[0]:r[1]]) for r in self.Xb}
        # scratch per worker: model P (shared with N for KL), N, S (log), Q (denominator matrix)
        need_N = not self.frobenius and p.beta not in (1.0, 2.0)
        need_S = not self.frobenius and p.beta in (0.0, 1.0)
        need_Q = not self.frobenius and p.beta != 1.0
        flat = lambda: np.empty(n * widest, dtype=p.X.dtype)  # noqa: E731
        self.scratch = [
            {
                "P": flat() if not self.frobenius else None,
                "N": flat() if need_N else None,
                "S": flat() if need_S else None,
                "Q": flat() if need_Q else None,
            }
            for _ in range(self.n_workers)
        ]
        # serpentine order: the blocks a sweep touched last are still in cache when the next starts
        forward = list(enumerate(self.blocks))
        self._orders = (forward, forward[::-1])
        self._sweeps = 0

    # ---------------------------------------------------------------- sweeps
    def sweep(self, update_H: bool, accumulate_W: bool, WtW=None) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """One pass over the blocks.

        Updates ``H`` block by block when ``update_H``; returns the divergence
        minus its data constant at the (new) factors, and the summed
        accumulators for the next ``W`` update (numerator, denominator; the
        denominator is None when it is a plain row sum). For Frobenius
        without a mask the divergence part is only ``-<H, W^T X>`` (the
        caller adds the Gram term) and the two matrices are ``X H^T`` and
        ``H H^T``.

        Blocks are handed out on demand (a shared iterator: CPython's list
        iterator is atomic), so a worker on a busier core takes fewer; this
        beat a fixed split by about 10% on the shared 2-core machine. Each
        block's results go to its own slot and are summed in block order,
        so the result does not depend on which thread took which block.
        """
        queue = iter(self._orders[self._sweeps % 2])
        self._sweeps += 1
        nb = len(self.blocks)
        self._loss, self._num, self._den = [0.0] * nb, [None] * nb, [None] * nb
        run_parallel(self._work, [(i, queue, update_H, accumulate_W, WtW) for i in range(self.n_workers)])
        loss = math.fsum(self._loss)
        num = _ordered_sum(self._num)
        den = _ordered_sum(self._den)
        if self.frobenius and accumulate_W:  # <H, W^T X> = <W, X H^T>
            loss -= self.kernels[0].dot(self.W, num)
        return loss, num, den

    def _work(self, i: int, queue, update_H: bool, accumulate_W: bool, WtW) -> None:
        p, W, H, k = self.p, self.W, self.H, self.kernels[i]
        buf = self.scratch[i]
        for j, (a, b) in queue:
            Xj = self.Xb[(a, b)]
            Hj = H[:, a:b]
            if self.frobenius:
                B = W.T @ Xj  # (k, w)
                if update_H:
                    _update(k, Hj, B, WtW @ Hj, p.l1_H, p.l2_H, p.gamma, p.eps, p.fixed, into_den=True)
                if accumulate_W:
                    self._num[j] = Xj @ Hj.T
                else:
                    self._loss[j] = -k.dot(Hj, B)
                self._den[j] = Hj @ Hj.T
                continue
            Mj = None if self.Mb is None else self.Mb[(a, b)]
            shape = Xj.shape
            size = Xj.size
            view = lambda name: None if buf[name] is None else buf[name][:size].reshape(shape)  # noqa: E731
            P, S, Q = view("P"), view("S"), view("Q")
            N = P if p.beta == 1.0 else view("N")
            if p.beta == 1.0:
                Q = Mj
            elif p.beta == 2.0:
                N = Xj
            if update_H:
                np.matmul(W, Hj, out=P)
                _elementwise(k, p.beta, p.eps, Xj, Mj, P, N, Q, S, False)
                den = W.sum(0)[:, None] if Q is None else W.T @ Q
                _update(k, Hj, W.T @ N, den, p.l1_H, p.l2_H, p.gamma, p.eps, p.fixed)
            np.matmul(W, Hj, out=P)
            self._loss[j] = _elementwise(k, p.beta, p.eps, Xj, Mj, P, N, Q, S, True)
            if accumulate_W:
                self._num[j] = N @ Hj.T
                if Q is not None:
                    self._den[j] = Q @ Hj.T


def _ordered_sum(parts: list) -> np.ndarray | None:
    """Sum of the non-None arrays in list order (None if there are none)."""
    total = None
    for part in parts:
        if part is not None:
            total = part.copy() if total is None else np.add(total, part, out=total)
    return total


def run_blocked(p, W: np.ndarray, H: np.ndarray, max_iter: int, tol: float, update_W: bool, update_H: bool,
                hook, n_workers: int | None = None) -> tuple[list[float], int]:
    """Multiplicative updates on numpy arrays with the blocked schedule (see the module docstring).

    ``hook(n_iter, objective) -> bool`` runs after every iteration (True
    stops); :func:`deepnmf.solvers.mu.multiplicative_updates` turns it into
    the user's :class:`~deepnmf.callbacks.EpochInfo` callback.

    Returns
    -------
    losses : list of float
        Objective at the start and after every iteration.
    n_iter : int
    """
    if n_workers is None:
        workers = max(1, min(default_workers(), p.X.size // MIN_ENTRIES_PER_WORKER))
    else:
        workers = max(1, int(n_workers))
    solver = BlockedSolver(p, W, H, workers)
    with blas_single_thread() if solver.n_workers > 1 else nullcontext():
        return _iterate(solver, p, W, H, max_iter, tol, update_W, update_H, hook)


def _iterate(solver, p, W, H, max_iter, tol, update_W, update_H, hook):
    k = solver.kernels[0]
    if solver.frobenius:
        # objective 0.5||X||^2 - <H, W^T X> + 0.5 <W^T W, H H^T>; the W update needs X H^T
        WtW = W.T @ W
        part, XHt, HHt = solver.sweep(False, True)
        objective = lambda part: p.const + part + 0.5 * k.dot(WtW, HHt)  # noqa: E731
        losses = [objective(part) + p.penalty(W, H)]
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            if update_W:
                num = XHt.copy() if not update_H else XHt
                _update(k, W, num, W @ HHt, p.l1_W, p.l2_W, p.gamma, p.eps)
                WtW = W.T @ W
                if not update_H:  # XHt stays exact while H is frozen: no sweep needed
                    part = -k.dot(W, XHt)
            if update_H:
                part, XHt, HHt = solver.sweep(True, update_W, WtW)
            losses.append(objective(part) + p.penalty(W, H))
            if (hook is not None and hook(n_iter, losses[-1])) or _stop(losses, n_iter, tol):
                break
        return losses, n_iter

    part, num, den = solver.sweep(False, update_W)
    losses = [p.const + part + p.penalty(W, H)]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if update_W:
            den_W = H.sum(1)[None, :] if den is None else den
            _update(k, W, num, den_W, p.l1_W, p.l2_W, p.gamma, p.eps)
        part, num, den = solver.sweep(update_H, update_W)
        losses.append(p.const + part + p.penalty(W, H))
        if (hook is not None and hook(n_iter, losses[-1])) or _stop(losses, n_iter, tol):
            break
    return losses, n_iter

