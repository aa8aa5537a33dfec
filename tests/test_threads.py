"""Worker-thread helpers of the numpy CPU engines."""
import threading

from threadpoolctl import threadpool_info

from deepnmf._threads import blas_single_thread, run_parallel, slices


def test_slices_cover_the_range_without_overlap():
    for n, parts in [(10, 3), (2, 5), (1, 1), (100, 2), (7, 7)]:
        got = slices(n, parts)
        assert len(got) == min(n, parts)
        assert got[0][0] == 0 and got[-1][1] == n
        assert all(a < b for a, b in got) and all(x[1] == y[0] for x, y in zip(got[:-1], got[1:]))
        sizes = [b - a for a, b in got]
        assert max(sizes) - min(sizes) <= 1


def test_run_parallel_keeps_order_and_uses_worker_threads():
    names = run_parallel(lambda i: (i, threading.current_thread().name), [(i,) for i in range(3)])
    assert [i for i, _ in names] == [0, 1, 2]
    assert all(name.startswith("deepnmf") for _, name in names)
    assert run_parallel(lambda i: i * 2, [(4,)]) == [8]  # a single call runs inline


def test_blas_single_thread_limits_and_restores():
    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy's BLAS should be visible to threadpoolctl"
    with blas_single_thread():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
