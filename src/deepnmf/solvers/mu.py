r"""Multiplicative updates for beta-divergence NMF (Lee & Seung 2001; Févotte & Idier 2011).

Orientation (as scikit-learn): ``X`` (n_samples, n_features) ~ ``W @ H`` with
``W`` (n_samples, k) the activations and ``H`` (k, n_features) the dictionary
(``components_``). The objective is

.. math::

    \sum_{ij} M_{ij}\, d_\beta(X_{ij} \mid (WH)_{ij})
    + l_1^W \|W\|_1 + \tfrac{l_2^W}{2} \|W\|_F^2 + l_1^H \|H\|_1 + \tfrac{l_2^H}{2} \|H\|_F^2

with ``M`` an optional 0/1 mask of observed entries. Each update multiplies a
factor by ``(numerator / denominator) ** gamma`` with ``gamma = 1/(2-beta)``
for ``beta < 1``, ``1/(beta-1)`` for ``beta > 2`` and 1 otherwise, which makes
the objective non-increasing (majorisation-minimisation).

Speed. The products with ``W @ H`` dominate; ``W @ H`` is computed once per
factor update and the matrices derived from it (``X * (WH)^(beta-2)``,
``(WH)^(beta-1)``) feed both the next update and the objective, so tracking
the objective at every iteration costs no extra product. Frobenius without a
mask never forms ``W @ H`` (Gram-matrix form), KL without a mask replaces a
product by row sums. On CPU, numpy arrays (views of the tensors' memory) run
the column-blocked, multi-threaded schedule of
:mod:`deepnmf.solvers._blocked` (small or tall Frobenius problems run the
plain Gram-matrix loop with threaded BLAS); CUDA tensors, or
``backend="torch"``, use the plain loops with torch kernels and preallocated
buffers. See ``docs/nmf.md`` for the measurements behind these choices.

The objective is the beta-divergence of :mod:`deepnmf.divergences` computed
fused with the updates, in place (tested against
:func:`deepnmf.divergences.beta_divergence`); the kernels, the elementwise
pass and the stopping rule that the plain and the blocked schedules share
live in :mod:`deepnmf.solvers._kernels`.
"""
from __future__ import annotations

import functools
import math
import platform
from dataclasses import dataclass, field

import numpy as np
import torch

from deepnmf.callbacks import Callback, Clock, report_epoch
from deepnmf.divergences import EPS
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.solvers._blocked import run_blocked, use_blocked_gram
from deepnmf.solvers._kernels import _elementwise, _NumpyKernels, _Problem, _stop, _update

__all__ = ["MUResult", "mm_gamma", "multiplicative_updates", "mkl_on_intel", "MIN_ENTRIES_TORCH_GRAM",
           "_NumpyKernels", "_Problem"]


@dataclass
class MUResult:
    """Output of :func:`multiplicative_updates` (``W`` and ``H`` are updated in place)."""

    W: torch.Tensor
    H: torch.Tensor
    n_iter: int
    losses: list[float] = field(default_factory=list)
    #: divergence (objective without penalties) of the returned factors
    divergence: float = float("nan")


def mm_gamma(beta: float) -> float:
    """Exponent that makes the multiplicative update a majorisation-minimisation step."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


class _TorchKernels:
    """In-place torch kernels (used on CUDA, or on CPU with ``backend="torch"``)."""

    matmul = staticmethod(lambda a, b, out: torch.matmul(a, b, out=out))
    small = staticmethod(lambda a, b: a @ b)
    divide = staticmethod(lambda a, b, out: torch.div(a, b, out=out))
    multiply = staticmethod(lambda a, b, out: torch.mul(a, b, out=out))
    floor = staticmethod(lambda a, eps: a.clamp_min_(eps))
    power = staticmethod(lambda a, p, out: torch.pow(a, p, out=out))
    log = staticmethod(lambda a, out: torch.log(a, out=out))
    reciprocal = staticmethod(lambda a, out: torch.reciprocal(a, out=out))

    @staticmethod
    def view(t: torch.Tensor) -> torch.Tensor:
        return t

    @staticmethod
    def dot(a, b) -> float:
        return float(torch.dot(a.reshape(-1), b.reshape(-1)).double())

    @staticmethod
    def total(a) -> float:
        return float(a.sum(dtype=torch.float64))

    @staticmethod
    def empty_like(a, shape=None):
        return torch.empty(shape or a.shape, dtype=a.dtype, device=a.device)


#: ``backend="auto"`` uses torch kernels for Frobenius on Intel/MKL from this many entries of X on; below,
#: numpy's lower per-call overhead won (16k-30k entries: numpy 1.3-1.9x faster; 160k: torch 0.93x; 256k: 0.76x)
MIN_ENTRIES_TORCH_GRAM = 1 << 17


def _kernels(device: torch.device, backend: str, *, gram: bool = False):
    """Kernel namespace for a run: ``gram`` marks a large Frobenius problem without a mask (see
    ``backend`` in :func:`multiplicative_updates` for the ``"auto"`` rule)."""
    if backend not in ("auto", "numpy", "torch"):
        raise ParameterError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and device.type != "cpu":
        raise ParameterError("backend='numpy' only works for CPU tensors")
    if backend == "torch" or device.type != "cpu" or (backend == "auto" and gram and mkl_on_intel()):
        return _TorchKernels
    return _NumpyKernels


@functools.lru_cache(maxsize=1)
def mkl_on_intel() -> bool:
    """Whether torch multiplies CPU matrices with MKL on an Intel CPU.

    There, MKL's products with a rank-sized dimension (``X @ H.T``,
    ``W.T @ X``) ran 1.6x faster than numpy's OpenBLAS (2-core Xeon with
    AVX-512: 1.6-1.7 ms against 2.7 ms at 513 x 10000, rank 40) and the
    Frobenius loop on torch kernels took 0.84x scikit-learn's time against
    1.1-1.3x for the numpy schedules; on the AMD EPYC machine of earlier
    measurements torch's products were 10-40% slower than numpy's. A fixed
    rule rather than a timing at run time, so the kernels (and the rounding
    of the results) never change between runs on one machine.
    """
    if not torch.backends.mkl.is_available():
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as f:
            return "GenuineIntel" in f.read()
    except OSError:
        return "intel" in platform.processor().lower()


def _data_constant(X, M, beta: float, eps: float) -> float:
    """Part of the objective that depends on the (masked) data only (sums accumulated in float64)."""
    X = np.asarray(X) if not isinstance(X, torch.Tensor) else X.detach().cpu().numpy()
    M = None if M is None else (np.asarray(M) if not isinstance(M, torch.Tensor) else M.detach().cpu().numpy())
    if beta == 2.0:
        return 0.5 * float(np.dot(X.ravel(), X.ravel()))
    if beta == 1.0:  # sum(X log X - X), with 0 log 0 = 0
        return float(np.dot(X.ravel(), np.log(np.where(X > 0, X, 1.0)).ravel())) - float(X.sum(dtype=np.float64))
    Xs = np.maximum(X, X.dtype.type(eps)) if beta <= 0 else X
    terms = -np.log(Xs) - 1.0 if beta == 0.0 else Xs**beta / (beta * (beta - 1.0))
    return float((terms * M).sum(dtype=np.float64) if M is not None else terms.sum(dtype=np.float64))


def _prepare(p: _Problem, WH, N, Q, S, *, with_loss: bool) -> float:
    """From a fresh ``WH`` build the update matrices and (optionally) the objective.

    On return ``N = M * X * (WH)^(beta-2)`` (numerator matrix) and
    ``Q = M * (WH)^(beta-1)`` (denominator matrix) except for KL, whose
    denominator matrix is the constant mask (or a plain sum). ``X`` is already
    masked; ``WH`` is floored for ``beta < 2``; ``S`` is scratch. Returns the
    objective's divergence, or NaN when ``with_loss`` is false.

    The passes run single-threaded on purpose: splitting them over Python
    threads was 10x slower here, because OpenBLAS's worker threads keep
    spinning on the cores after each matrix product.
    """
    return p.const + _elementwise(p.k, p.beta, p.eps, p.X, p.M, WH, N, Q, S, with_loss)


def _validate(X, W, H, mask, fixed_components):
    if X.ndim != 2 or W.ndim != 2 or H.ndim != 2:
        raise DataError("X, W and H must be 2-D")
    n, m = X.shape
    if W.shape[0] != n or H.shape[1] != m or W.shape[1] != H.shape[0]:
        raise DataError(
            f"shapes do not chain: X {tuple(X.shape)}, W {tuple(W.shape)}, H {tuple(H.shape)}; "
            "need X (n, m) = W (n, k) @ H (k, m)"
        )
    if not (X.dtype == W.dtype == H.dtype):
        raise DataError(f"X, W and H must share a dtype, got {X.dtype}, {W.dtype}, {H.dtype}")
    if mask is not None and tuple(mask.shape) != tuple(X.shape):
        raise DataError(f"mask has shape {tuple(mask.shape)} but X has shape {tuple(X.shape)}")
    if fixed_components is not None and tuple(fixed_components.shape) != (H.shape[0],):
        raise DataError(
            f"fixed_components must be a boolean vector of length {H.shape[0]} (one per atom), "
            f"got shape {tuple(fixed_components.shape)}"
        )


def multiplicative_updates(
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
    fixed_components: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    eps: float = EPS,
    callback: Callback | None = None,
    backend: str = "auto",
    n_workers: int | None = None,
) -> MUResult:
    """Run multiplicative updates from ``W``, ``H`` (updated in place).

    Parameters
    ----------
    X : torch.Tensor [shape=(n_samples, n_features)]
        Nonnegative data (validated by the caller).
    W : torch.Tensor [shape=(n_samples, n_components)]
        Activations, updated in place unless ``update_W=False``.
    H : torch.Tensor [shape=(n_components, n_features)]
        Dictionary, updated in place unless ``update_H=False``.
    beta : float
        Beta of the divergence (2 Frobenius, 1 KL, 0 Itakura-Saito, any real).
    max_iter : int
        Maximum number of iterations (one iteration updates W then H).
    tol : float
        Stop when the relative decrease of ``sqrt(2 * objective)`` over 10
        iterations, relative to its initial value, falls below ``tol``
        (scikit-learn's rule); 0 runs exactly ``max_iter`` iterations.
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalty weights (see the module docstring).
    update_W, update_H : bool
        Which factors to learn. ``update_H=False`` is ``transform``.
    fixed_components : torch.Tensor [shape=(n_components,), bool], optional
        Dictionary atoms (rows of ``H``) held fixed while the others are learned.
    mask : torch.Tensor [shape=(n_samples, n_features)], optional
        1 for observed entries, 0 for missing ones (ignored by objective and updates).
    eps : float
        Floor of the model and of denominators.
    callback : callable, optional
        Called with a :class:`deepnmf.callbacks.EpochInfo` after each
        iteration (``epoch`` the iteration, ``max_epochs=max_iter``,
        ``train={"loss": objective}``); a return value of ``True`` stops the run.
    backend : {"auto", "numpy", "torch"}
        Kernels for CPU tensors. ``"auto"``: torch on CUDA; on CPU numpy,
        except Frobenius without a mask on at least ``MIN_ENTRIES_TORCH_GRAM``
        entries when torch's matrix products run on MKL on an Intel CPU
        (:func:`mkl_on_intel`), where torch's are faster.
        The numpy kernels run the column-blocked, multi-threaded schedule of
        :mod:`deepnmf.solvers._blocked`.
    n_workers : int, optional
        Worker threads of the numpy schedule (default: ``torch.get_num_threads()``).

    Returns
    -------
    MUResult
        ``W``, ``H``, ``n_iter`` and ``losses`` (objective after each iteration,
        starting with the initial one at index 0).
    """
    _validate(X, W, H, mask, fixed_components)
    gram_auto = float(beta) == 2.0 and mask is None and n_workers is None and X.numel() >= MIN_ENTRIES_TORCH_GRAM
    k = _kernels(X.device, backend, gram=gram_auto)
    Xv, Wv, Hv = k.view(X), k.view(W), k.view(H)
    Mv = None
    if mask is not None:
        M = mask.to(dtype=X.dtype, device=X.device)
        if bool(((M != 0) & (M != 1)).any()):
            raise DataError("mask must contain only 0 (missing) and 1 (observed)")
        if not bool(M.any()):
            raise DataError("mask marks every entry as missing; nothing to fit")
        Mv = k.view(M.contiguous())
    if float(beta) <= 0:
        Xv = k.floor(Xv.copy() if k is _NumpyKernels else Xv.clone(), eps)  # log(0) is infinite
    if Mv is not None:
        Xv = Xv * Mv  # zero the missing entries once
    fixed = None
    if fixed_components is not None and bool(fixed_components.any()):
        fixed = fixed_components.detach().cpu().numpy().astype(bool) if k is _NumpyKernels else fixed_components.to(X.device, torch.bool)
    p = _Problem(
        k, Xv, Mv, float(beta), mm_gamma(float(beta)), eps,
        l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H, fixed, _data_constant(Xv, Mv, float(beta), eps),
    )
    gram = p.beta == 2.0 and Mv is None
    clock = Clock()
    hook = None if callback is None else (lambda n_iter, loss: report_epoch(callback, n_iter, max_iter, loss, clock))
    if k is _NumpyKernels and (not gram or use_blocked_gram(X.shape, n_workers)):
        losses, n_iter = run_blocked(p, Wv, Hv, max_iter, tol, update_W, update_H, hook, n_workers)
    elif gram:
        losses, n_iter = _run_frobenius(p, Wv, Hv, max_iter, tol, update_W, update_H, hook)
    else:
        losses, n_iter = _run_general(p, Wv, Hv, max_iter, tol, update_W, update_H, hook)
    return MUResult(W, H, n_iter, losses, losses[-1] - p.penalty(Wv, Hv))


def _run_general(p: _Problem, W, H, max_iter, tol, update_W, update_H, hook):
    """Any beta, optional mask: form ``WH`` once per factor update (``hook(n_iter, objective)``: True stops).

    Only the ``(n_samples, n_features)`` matrices live in preallocated
    buffers; products with a rank-sized dimension allocate their (small) result.
    """
    k = p.k
    WH = k.empty_like(p.X)
    # masked Frobenius: the numerator matrix is M * X; KL: N = X / WH overwrites WH, which is
    # recomputed before it is needed again (one 20 MB buffer less on the benchmark's shape)
    N = p.X if p.beta == 2.0 else WH if p.beta == 1.0 else k.empty_like(p.X)
    S = k.empty_like(p.X) if p.beta in (0.0, 1.0) else None
    Q = p.M if p.beta == 1.0 else k.empty_like(p.X)  # KL: the denominator matrix is the mask, or all ones
    k.matmul(W, H, WH)
    losses = [_prepare(p, WH, N, Q, S, with_loss=True) + p.penalty(W, H)]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if update_W:
            den_W = H.sum(1)[None, :] if Q is None else k.small(Q, H.T)
            _update(k, W, k.small(N, H.T), den_W, p.l1_W, p.l2_W, p.gamma, p.eps)
            k.matmul(W, H, WH)
            loss = _prepare(p, WH, N, Q, S, with_loss=not update_H)
        if update_H:
            den_H = W.sum(0)[:, None] if Q is None else k.small(W.T, Q)
            _update(k, H, k.small(W.T, N), den_H, p.l1_H, p.l2_H, p.gamma, p.eps, p.fixed)
            k.matmul(W, H, WH)
            loss = _prepare(p, WH, N, Q, S, with_loss=True)
        losses.append(loss + p.penalty(W, H))
        if (hook is not None and hook(n_iter, losses[-1])) or _stop(losses, n_iter, tol):
            break
    return losses, n_iter


def _run_frobenius(p: _Problem, W, H, max_iter, tol, update_W, update_H, hook):
    """Frobenius without a mask: Gram-matrix form, ``W @ H`` is never formed.

    The objective ``0.5 ||X||^2 - <H, W^T X> + 0.5 <W^T W, H H^T>`` reuses the
    products of the H update (and of the W update when H is frozen). Every
    product here has a rank-sized dimension and allocates its result: numpy
    then uses SYRK for the Gram matrices (a GEMM into a preallocated buffer
    was 100x slower for ``H @ H.T``).
    """
    k = p.k
    X = p.X
    HHt, WtW = k.small(H, H.T), k.small(W.T, W)
    # the two (n_components, n_features) products go into fixed buffers (fresh ones cost page faults)
    WtX, den_H = k.empty_like(H), k.empty_like(H)
    k.matmul(W.T, X, WtX)
    losses = [p.const - k.dot(H, WtX) + 0.5 * k.dot(WtW, HHt) + p.penalty(W, H)]
    XHt = k.small(X, H.T) if update_W and not update_H else None  # constant while H is frozen
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if update_W:
            num = k.small(X, H.T) if update_H else XHt.copy() if k is _NumpyKernels else XHt.clone()
            _update(k, W, num, k.small(W, HHt), p.l1_W, p.l2_W, p.gamma, p.eps)
            WtW = k.small(W.T, W)
            if not update_H:
                loss = p.const - k.dot(W, XHt) + 0.5 * k.dot(WtW, HHt)
        if update_H:
            k.matmul(W.T, X, WtX)  # kept intact for the objective: the ratio goes into the denominator
            _update(k, H, WtX, k.matmul(WtW, H, den_H), p.l1_H, p.l2_H, p.gamma, p.eps, p.fixed, into_den=True)
            HHt = k.small(H, H.T)
            loss = p.const - k.dot(H, WtX) + 0.5 * k.dot(WtW, HHt)
        losses.append(loss + p.penalty(W, H))
        if (hook is not None and hook(n_iter, losses[-1])) or _stop(losses, n_iter, tol):
            break
    return losses, n_iter
