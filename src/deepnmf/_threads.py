"""Worker threads for CPU kernels written on numpy.

The blocked multiplicative updates split their work into slices handled by
Python worker threads, each calling numpy (which releases the GIL) while BLAS
runs single-threaded. On the 2-core machine we measured this beat letting
BLAS thread each operation: its idle worker threads keep spinning on the
cores between operations, and numpy's elementwise kernels are
single-threaded anyway.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Callable, Iterator

import numpy as np
import torch

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_CONTROLLER: Any = None


def default_workers() -> int:
    """Worker count: torch's intra-op thread count (follows ``OMP_NUM_THREADS`` and ``torch.set_num_threads``)."""
    return max(1, torch.get_num_threads())


@contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads and BLAS's limited to ``n`` inside the block, restored after."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def blas_single_thread() -> AbstractContextManager:
    """Context manager limiting BLAS to one thread.

    The threadpoolctl controller (which scans the loaded libraries, a few
    milliseconds) is built once per process.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415

        with _LOCK:
            if _CONTROLLER is None:
                _CONTROLLER = ThreadpoolController()
    if not _CONTROLLER.select(user_api="blas").lib_controllers:
        return nullcontext()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def slices(n: int, n_parts: int) -> list[tuple[int, int]]:
    """``n_parts`` contiguous, nearly equal, non-empty ranges covering ``range(n)`` (fewer if ``n < n_parts``)."""
    edges = np.linspace(0, n, max(1, min(n_parts, n)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_parallel(fn: Callable[..., Any], args: list[tuple]) -> list[Any]:
    """``[fn(*a) for a in args]``, on the shared worker pool when there is more than one call."""
    global _POOL, _POOL_SIZE
    if len(args) <= 1:
        return [fn(*a) for a in args]
    with _LOCK:
        if _POOL is None or _POOL_SIZE < len(args):
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL, _POOL_SIZE = ThreadPoolExecutor(len(args), thread_name_prefix="deepnmf"), len(args)
        pool = _POOL
    futures = [pool.submit(fn, *a) for a in args]
    return [f.result() for f in futures]
