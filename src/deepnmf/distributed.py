"""Many processes through :mod:`torch.distributed`: process group, shards, data-parallel NMF.

Start a job with ``torchrun`` (``torchrun --nproc_per_node=N -m deepnmf
train ... --distributed``); :func:`setup` joins the process group torchrun
describes in the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), with the ``gloo`` backend on CPU and ``nccl`` on CUDA.
Rank 0 alone writes outputs (:func:`is_main`).

NMF is data-parallel (:func:`data_parallel_mu`): each rank holds a block of
samples (rows of ``X`` and of the activations ``W``) and the whole dictionary
``H``. The activation update is local; the dictionary update's numerator and
denominator are sums over samples, all-reduced, so every rank applies the
same update and ``H`` stays identical everywhere. The iterates are those of
the one-process multiplicative updates up to the order of floating-point
sums.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.distributed as dist

from deepnmf.callbacks import Callback, Clock, report_epoch
from deepnmf.exceptions import ParameterError

__all__ = ["setup", "teardown", "is_distributed", "rank", "world_size", "is_main", "row_block",
           "block_sizes", "all_reduce_sum", "all_gather_rows", "DistributedMUResult", "data_parallel_mu", "data_parallel_hals"]


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 outside one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the process that writes files."""
    return rank() == 0


def setup(backend: str = "auto") -> tuple[int, int]:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    backend : {"auto", "gloo", "nccl"}
        ``"auto"``: ``nccl`` when CUDA is available, else ``gloo``.

    Returns
    -------
    (rank, world_size)

    Raises
    ------
    ParameterError
        Not started by torchrun (no ``RANK``/``WORLD_SIZE`` in the environment).
    """
    if is_distributed():
        return rank(), world_size()
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ParameterError("--distributed needs a torchrun launch (torchrun --nproc_per_node=N -m deepnmf ...); "
                             f"{', '.join(missing)} not set")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ParameterError(f"backend must be 'auto', 'gloo' or 'nccl'; got {backend!r}")
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return rank(), world_size()


def teardown() -> None:
    """Leave the process group (no-op outside one)."""
    if is_distributed():
        dist.destroy_process_group()


def row_block(n_rows: int, rank_: int | None = None, world: int | None = None) -> slice:
    """This rank's contiguous block of ``n_rows`` samples (sizes differ by at most one)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n_rows, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def block_sizes(n_rows: int, world: int | None = None) -> list[int]:
    """Rows of every rank's :func:`row_block` of ``n_rows``, in rank order."""
    w = world_size() if world is None else world
    return [len(range(n_rows)[row_block(n_rows, r, w)]) for r in range(w)]


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the ranks in place (no-op outside a process group); returns ``t``."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_rows(t: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Every rank's rows concatenated in rank order, on every rank (``t`` itself outside a process group).

    Parameters
    ----------
    t : torch.Tensor [shape=(sizes[rank], ...)]
        This rank's rows (none allowed); the other dimensions agree over the ranks.
    sizes : sequence of int
        Rows held by each rank.

    Returns
    -------
    torch.Tensor [shape=(sum(sizes), ...)]
    """
    if not is_distributed():
        return t
    padded = t.new_zeros((max(sizes), *t.shape[1:]))  # all_gather wants one shape on every rank
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


@dataclass
class DistributedMUResult:
    """``W`` (this rank's block), ``H``, iterations and the global objective after each one (index 0: start)."""

    W: torch.Tensor
    H: torch.Tensor
    n_iter: int
    losses: list[float] = field(default_factory=list)


def _global_loss(X: torch.Tensor, WH: torch.Tensor, beta: float, eps: float) -> float:
    from deepnmf.divergences import beta_divergence

    local = beta_divergence(X, WH, beta, eps=eps).to(torch.float64).reshape(1)
    return float(all_reduce_sum(local))


def _factor_terms(X: torch.Tensor, WH: torch.Tensor, beta: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X * WH^(beta-2), WH^(beta-1))``: the two matrices both factor updates multiply."""
    WH = WH.clamp(min=eps)
    if beta == 1.0:
        return X / WH, torch.ones_like(WH)
    return X * WH.pow(beta - 2.0), WH.pow(beta - 1.0)


def data_parallel_mu(X: torch.Tensor, W: torch.Tensor, H: torch.Tensor, *, beta: float, max_iter: int = 200,
                     tol: float = 1e-4, eps: float = 1e-12, callback: Callback | None = None) -> DistributedMUResult:
    """Multiplicative updates with the samples split over the ranks.

    Parameters
    ----------
    X : torch.Tensor [shape=(n_local_samples, n_features)]
        This rank's block of the (nonnegative) data.
    W : torch.Tensor [shape=(n_local_samples, n_components)]
        This rank's block of the activations, updated in place.
    H : torch.Tensor [shape=(n_components, n_features)]
        The dictionary, the same on every rank, updated in place.
    beta : float
        Beta of the divergence (2 Frobenius, 1 KL, 0 Itakura-Saito, any real).
    max_iter, tol
        As :func:`deepnmf.solvers.mu.multiplicative_updates` (scikit-learn's
        stopping rule on the global objective, every 10 iterations).
    eps : float
        Floor of the model and of the denominators.
    callback : callable, optional
        :class:`~deepnmf.callbacks.EpochInfo` per iteration (global loss); True stops.

    Returns
    -------
    DistributedMUResult
    """
    from deepnmf.solvers._kernels import _stop
    from deepnmf.solvers.mu import mm_gamma

    if X.shape[0] != W.shape[0] or X.shape[1] != H.shape[1] or W.shape[1] != H.shape[0]:
        raise ParameterError(f"shapes do not match: X {tuple(X.shape)}, W {tuple(W.shape)}, H {tuple(H.shape)}")
    beta, gamma, clock = float(beta), mm_gamma(float(beta)), Clock()
    Xf = X.clamp(min=eps) if beta <= 0 else X
    WH = W @ H  # the model after the last H update: scored, then the next W update's starting point
    losses = [_global_loss(Xf, WH, beta, eps)]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        num, den = _factor_terms(Xf, WH, beta, eps)
        W.mul_((num @ H.T / (den @ H.T).clamp(min=eps)).pow(gamma))
        num, den = _factor_terms(Xf, W @ H, beta, eps)
        top, bottom = all_reduce_sum(W.T @ num), all_reduce_sum(W.T @ den)
        H.mul_((top / bottom.clamp(min=eps)).pow(gamma))
        WH = W @ H
        losses.append(_global_loss(Xf, WH, beta, eps))
        if callback is not None and report_epoch(callback, n_iter, max_iter, losses[-1], clock):
            break
        if _stop(losses, n_iter, tol):
            break
    return DistributedMUResult(W, H, n_iter, losses)


def _reduced_scalars(*values: float) -> list[float]:
    return [float(v) for v in all_reduce_sum(torch.tensor(values, dtype=torch.float64))]


def _hals_passes(Ft: torch.Tensor, A: torch.Tensor, Bt: torch.Tensor, n_inner: int, *, local: bool) -> float:
    """HALS passes over ``Ft`` (k, rows) as :func:`deepnmf.solvers.cd._hals_update` makes them; for a factor
    split over the ranks (``local``) the violation and the pass-to-pass change are summed over the ranks."""
    from deepnmf.solvers._cd_torch import hals
    from deepnmf.solvers.cd import INNER_DECAY

    k = Ft.shape[0]
    order, active = list(range(k)), [True] * k
    violation, first = hals(Ft.T, A, Bt.T, order, active)
    if local:
        violation, first = _reduced_scalars(violation, first)
    for _ in range(n_inner - 1):
        _, change = hals(Ft.T, A, Bt.T, order, active)
        change = _reduced_scalars(change)[0] if local else change
        if change <= INNER_DECAY * first:
            break
    return violation


def data_parallel_hals(X: torch.Tensor, W: torch.Tensor, H: torch.Tensor, *, n_samples: int, max_iter: int = 200,
                       tol: float = 1e-4, inner: int | None = None,
                       callback: Callback | None = None) -> DistributedMUResult:
    """Frobenius HALS (scikit-learn's ``cd``; ``inner=None``: accelerated) with the samples split over the ranks.

    Parameters
    ----------
    X : torch.Tensor [shape=(n_local_samples, n_features)]
    W : torch.Tensor [shape=(n_local_samples, n_components)]
        This rank's block, updated in place.
    H : torch.Tensor [shape=(n_components, n_features)]
        Identical on every rank, updated in place.
    n_samples : int
        Samples over all ranks (the accelerated passes' count depends on it).
    max_iter, tol, inner, callback
        As :func:`deepnmf.solvers.cd.coordinate_descent`.

    Returns
    -------
    DistributedMUResult
        ``losses``: ``0.5 ||X - W H||^2`` over all samples, at the start and after each iteration.
    """
    from deepnmf.solvers.cd import _dot, inner_passes

    k, m = H.shape
    inner_W, inner_H = inner or inner_passes(n_samples, m, k), inner or inner_passes(m, n_samples, k)
    clock = Clock()
    Wt = W.T.contiguous()
    const = _reduced_scalars(0.5 * float((X.double() ** 2).sum()))[0]
    HHt = H @ H.T
    WtW = all_reduce_sum(Wt @ Wt.T)
    losses = [const - _reduced_scalars(_dot(Wt, H @ X.T))[0] + 0.5 * _dot(WtW, HHt)]
    violation_init, n_iter = None, 0
    for n_iter in range(1, max_iter + 1):
        violation = _hals_passes(Wt, HHt, H @ X.T, inner_W, local=True)
        WtW, WtX = all_reduce_sum(Wt @ Wt.T), all_reduce_sum(Wt @ X)
        violation += _hals_passes(H, WtW, WtX, inner_H, local=False)
        HHt = H @ H.T
        losses.append(const - _dot(H, WtX) + 0.5 * _dot(WtW, HHt))  # as solvers.cd computes it
        if callback is not None and report_epoch(callback, n_iter, max_iter, losses[-1], clock):
            break
        violation_init = violation if violation_init is None else violation_init
        if violation_init == 0 or (tol > 0 and violation / violation_init <= tol):
            break
    W.copy_(Wt.T)
    return DistributedMUResult(W, H, n_iter, losses)
