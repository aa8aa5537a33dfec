"""The column-blocked, multi-threaded CPU schedule against the plain torch-kernel loop."""
import numpy as np
import pytest
import torch

from deepnmf.init import initialize
from deepnmf.solvers import _blocked
from deepnmf.solvers._blocked import column_blocks
from deepnmf.solvers.mu import multiplicative_updates


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 columns, so that a 30-column problem spans several blocks per worker."""
    monkeypatch.setattr(_blocked, "BLOCK_BYTES", 1)
    monkeypatch.setattr(_blocked, "MIN_BLOCK_COLUMNS", 4)


def test_column_blocks_cover_every_column_once():
    for m, n in [(10000, 513), (513, 10000), (7, 3), (1, 1), (1000, 1)]:
        ranges = column_blocks(m, n, 4)
        assert 1 <= len(ranges) <= m
        assert ranges[0][0] == 0 and ranges[-1][1] == m
        assert all(a < b for a, b in ranges)
        assert all(r[1] == s[0] for r, s in zip(ranges[:-1], ranges[1:]))
        widths = [b - a for a, b in ranges]
        assert max(widths) - min(widths) <= 1  # nearly equal blocks
    assert len(column_blocks(10000, 513, 4)) == 21  # about 1 MB each: 496 columns of 513 float32 rows


def test_workers_never_outnumber_blocks(small_blocks, rng):
    from deepnmf.solvers._blocked import BlockedSolver
    from deepnmf.solvers.mu import _NumpyKernels, _Problem

    X = rng.random((5, 9))
    p = _Problem(_NumpyKernels, X, None, 1.0, 1.0, 1e-12, 0, 0, 0, 0, None, 0.0)
    solver = BlockedSolver(p, np.ones((5, 2)), np.ones((2, 9)), n_workers=8)
    assert len(solver.blocks) == 3 and solver.n_workers == 3  # 9 columns in blocks of 4 (at least)


@pytest.mark.parametrize("n_workers", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0, 0.5, 3.0])
def test_blocked_schedule_matches_plain_loop(beta, masked, n_workers, small_blocks, rng):
    X = torch.from_numpy(rng.random((17, 30)) ** 2 + 0.01)
    M = torch.from_numpy((rng.random(X.shape) > 0.25).astype(np.float64)) if masked else None
    W, H = initialize(X, 4, init="nndsvda", generator=torch.Generator().manual_seed(1))
    fixed = torch.tensor([False, True, False, False])
    kw = dict(beta=beta, max_iter=25, tol=0, mask=M, l1_reg_W=0.1, l2_reg_H=0.2, fixed_components=fixed)
    a = multiplicative_updates(X, W.clone(), H.clone(), backend="numpy", n_workers=n_workers, **kw)
    b = multiplicative_updates(X, W.clone(), H.clone(), backend="torch", **kw)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10)
    np.testing.assert_allclose(a.W.numpy(), b.W.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(a.H.numpy(), b.H.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5])
@pytest.mark.parametrize("frozen", ["W", "H"])
def test_blocked_schedule_with_one_factor_frozen(beta, frozen, small_blocks, rng):
    X = torch.from_numpy(rng.random((12, 40)) + 0.05)
    W, H = initialize(X, 3, init="nndsvda", generator=torch.Generator().manual_seed(2))
    kw = dict(beta=beta, max_iter=15, tol=0, update_W=frozen != "W", update_H=frozen != "H")
    a = multiplicative_updates(X, W.clone(), H.clone(), backend="numpy", n_workers=2, **kw)
    b = multiplicative_updates(X, W.clone(), H.clone(), backend="torch", **kw)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10)
    np.testing.assert_allclose((a.W @ a.H).numpy(), (b.W @ b.H).numpy(), rtol=1e-8)
    assert np.all(np.diff(a.losses) <= 1e-12 * a.losses[0])


def test_blocked_float32_large_problem_matches_float64(rng):
    """Above 2M entries the block dots run in the data's dtype; the objective stays within float32 accuracy."""
    X64 = torch.from_numpy(rng.random((300, 7000)) + 0.01)
    W, H = initialize(X64, 5, init="nndsvda", generator=torch.Generator().manual_seed(0))
    r64 = multiplicative_updates(X64, W.clone(), H.clone(), beta=1.0, max_iter=5, tol=0, n_workers=2)
    r32 = multiplicative_updates(X64.float(), W.float(), H.float(), beta=1.0, max_iter=5, tol=0, n_workers=2)
    np.testing.assert_allclose(r32.losses, r64.losses, rtol=1e-4)


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_blocked_schedule_with_strided_inputs(beta, small_blocks, rng):
    """Column-major X and factors that are views with odd strides give the plain loop's result."""
    X = torch.from_numpy(np.asfortranarray(rng.random((11, 37)) + 0.1))
    W, H = initialize(X.contiguous(), 3, init="nndsvda", generator=torch.Generator().manual_seed(3))
    W_strided = torch.zeros(11, 6, dtype=X.dtype)[:, ::2]
    W_strided.copy_(W)
    H_strided = torch.zeros(3, 74, dtype=X.dtype)[:, ::2]
    H_strided.copy_(H)
    a = multiplicative_updates(X, W_strided, H_strided, beta=beta, max_iter=10, tol=0, backend="numpy", n_workers=2)
    b = multiplicative_updates(X.contiguous(), W.clone(), H.clone(), beta=beta, max_iter=10, tol=0, backend="torch")
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-10)
    np.testing.assert_allclose(W_strided.numpy(), b.W.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(H_strided.numpy(), b.H.numpy(), rtol=1e-8, atol=1e-12)


def test_schedule_choice_for_frobenius():
    from deepnmf.solvers._blocked import use_blocked_gram

    assert use_blocked_gram((513, 10000), None)  # the benchmark's shape: wide and large
    assert not use_blocked_gram((10000, 513), None)  # tall: the Gram loop
    assert not use_blocked_gram((300, 513), None)  # small: the Gram loop
    assert use_blocked_gram((300, 513), 2)  # an explicit worker count asks for the blocked schedule


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_blocked_schedule_is_deterministic(beta, small_blocks, rng):
    """Blocks go to whichever thread is free, but results are summed in block order: runs are bit-identical."""
    X = torch.from_numpy(rng.random((20, 64)).astype(np.float32) + 0.01)
    W, H = initialize(X, 3, init="nndsvda", generator=torch.Generator().manual_seed(4))
    runs = [multiplicative_updates(X, W.clone(), H.clone(), beta=beta, max_iter=30, tol=0, n_workers=3) for _ in range(4)]
    for r in runs[1:]:
        assert r.losses == runs[0].losses
        assert torch.equal(r.W, runs[0].W) and torch.equal(r.H, runs[0].H)
