"""Multiplicative updates: monotone objective, agreement with scikit-learn, masks, fixed atoms."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf

from deepnmf.divergences import beta_divergence
from deepnmf.exceptions import DataError
from deepnmf.init import initialize
from deepnmf.solvers.mu import multiplicative_updates

BETAS = [2.0, 1.0, 0.5, 0.0, 3.0, -0.5]


def _start(X, k=4, seed=0):
    return initialize(X, k, init="nndsvda", generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("beta", BETAS)
def test_objective_never_rises_and_matches_divergence(beta, masked, backend, rng):
    X = torch.from_numpy(rng.random((30, 25)) ** 2)
    M = torch.from_numpy((rng.random(X.shape) > 0.3).astype(np.float64)) if masked else None
    W, H = _start(X)
    res = multiplicative_updates(X, W, H, beta=beta, max_iter=60, tol=0, mask=M, backend=backend)
    L = np.asarray(res.losses)
    assert len(L) == 61 and res.n_iter == 60
    assert np.all(np.diff(L) <= 1e-10 * abs(L[0])), f"objective rose: {np.diff(L).max()}"
    assert L[-1] < L[0]
    assert L[-1] == pytest.approx(beta_divergence(X, W @ H, beta, mask=M).item(), rel=1e-9)
    assert bool((W >= 0).all()) and bool((H >= 0).all())


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 0.0])
def test_same_objective_as_scikit_learn_mu(beta, rng):
    """Target of issue 2: from the same nndsvda start, 200 iterations, relative gap < 1e-2."""
    X = rng.random((80, 60)) ** 2 + 1e-3
    W0, H0 = _initialize_nmf(X, 6, init="nndsvda", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SklearnNMF(6, solver="mu", beta_loss=beta, init="custom", max_iter=200, tol=0)
        W_sk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    W, H = torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())
    multiplicative_updates(torch.from_numpy(X), W, H, beta=beta, max_iter=200, tol=0)
    ref = _beta_divergence(X, W_sk, sk.components_, beta)
    ours = _beta_divergence(X, W.numpy(), H.numpy(), beta)
    assert abs(ours - ref) / ref < 1e-2


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0])
def test_float32_matches_float64(beta, rng):
    X64 = torch.from_numpy(rng.random((40, 30)) + 0.01)
    W, H = _start(X64)
    r64 = multiplicative_updates(X64, W.clone(), H.clone(), beta=beta, max_iter=50, tol=0)
    r32 = multiplicative_updates(X64.float(), W.float(), H.float(), beta=beta, max_iter=50, tol=0)
    assert r32.W.dtype == torch.float32
    assert r32.losses[-1] == pytest.approx(r64.losses[-1], rel=1e-3)
    np.testing.assert_allclose((r32.W @ r32.H).numpy(), (r64.W @ r64.H).numpy(), rtol=2e-3, atol=1e-4)


def test_planted_factorisation_recovered(rng):
    W_true = rng.gamma(1.0, size=(200, 3))
    H_true = rng.random((3, 40)) * (rng.random((3, 40)) > 0.5)
    X = torch.from_numpy(W_true @ H_true)
    W, H = initialize(X, 3, init="nndsvda", generator=torch.Generator().manual_seed(0))
    multiplicative_updates(X, W, H, beta=1.0, max_iter=2000, tol=0)
    rel = torch.linalg.norm(X - W @ H) / torch.linalg.norm(X)
    assert rel < 1e-2
    Hn = H.numpy() / np.linalg.norm(H.numpy(), axis=1, keepdims=True)
    Tn = H_true / np.linalg.norm(H_true, axis=1, keepdims=True)
    best = (Tn @ Hn.T).max(axis=1)
    assert best.min() > 0.98


def test_masked_entries_are_ignored(rng):
    X = torch.from_numpy(rng.random((20, 15)) + 0.1)
    M = torch.ones_like(X)
    M[3, 4] = 0
    X_corrupt = X.clone()
    X_corrupt[3, 4] = 1e6
    W, H = _start(X)
    a = multiplicative_updates(X, W.clone(), H.clone(), beta=1.0, max_iter=30, tol=0, mask=M)
    b = multiplicative_updates(X_corrupt, W.clone(), H.clone(), beta=1.0, max_iter=30, tol=0, mask=M)
    np.testing.assert_allclose(a.W.numpy(), b.W.numpy(), rtol=1e-10)
    assert a.losses == pytest.approx(b.losses, rel=1e-10)


def test_fixed_atoms_and_frozen_dictionary(rng):
    X = torch.from_numpy(rng.random((25, 20)))
    W, H = _start(X)
    H_before = H.clone()
    fixed = torch.tensor([True, False, True, False])
    multiplicative_updates(X, W, H, beta=1.0, max_iter=20, tol=0, fixed_components=fixed)
    assert torch.equal(H[fixed], H_before[fixed])
    assert not torch.allclose(H[~fixed], H_before[~fixed])
    for beta in (2.0, 1.0):
        W2, H2 = _start(X)
        H2_before = H2.clone()
        res = multiplicative_updates(X, W2, H2, beta=beta, max_iter=20, tol=0, update_H=False)
        assert torch.equal(H2, H2_before)
        assert np.all(np.diff(res.losses) <= 1e-12 * res.losses[0])


def test_penalties_enter_objective_and_sparsify(rng):
    X = torch.from_numpy(rng.random((30, 20)))
    W, H = _start(X)
    plain = multiplicative_updates(X, W.clone(), H.clone(), beta=1.0, max_iter=100, tol=0)
    sparse = multiplicative_updates(X, W.clone(), H.clone(), beta=1.0, max_iter=100, tol=0, l1_reg_W=2.0)
    assert np.all(np.diff(sparse.losses) <= 1e-10 * sparse.losses[0])
    assert float(sparse.W.sum()) < float(plain.W.sum())
    expected = beta_divergence(X, sparse.W @ sparse.H, 1.0).item() + 2.0 * float(sparse.W.sum())
    assert sparse.losses[-1] == pytest.approx(expected, rel=1e-9)


def test_tol_stops_early_and_callback(rng):
    X = torch.from_numpy(rng.random((30, 20)))
    W, H = _start(X)
    res = multiplicative_updates(X, W, H, beta=2.0, max_iter=1000, tol=1e-3)
    assert res.n_iter < 1000 and res.n_iter % 10 == 0
    seen = []
    W, H = _start(X)
    res = multiplicative_updates(X, W, H, beta=1.0, max_iter=50, tol=0,
                                 callback=lambda info: seen.append(info) or info.epoch == 7)
    assert res.n_iter == 7 and [info.epoch for info in seen] == list(range(1, 8))
    assert all(info.max_epochs == 50 for info in seen)
    assert [info.loss for info in seen] == res.losses[1:]  # the objective after each iteration


def test_shape_errors(rng):
    X = torch.from_numpy(rng.random((5, 4)))
    with pytest.raises(DataError, match="do not chain"):
        multiplicative_updates(X, torch.ones(5, 2, dtype=X.dtype), torch.ones(3, 4, dtype=X.dtype))
    with pytest.raises(DataError, match="mask has shape"):
        multiplicative_updates(X, torch.ones(5, 2, dtype=X.dtype), torch.ones(2, 4, dtype=X.dtype), mask=torch.ones(4, 5))
    with pytest.raises(DataError, match="only 0"):
        multiplicative_updates(X, torch.ones(5, 2, dtype=X.dtype), torch.ones(2, 4, dtype=X.dtype), mask=torch.full((5, 4), 0.5))


@pytest.mark.parametrize("intel", [False, True])
def test_auto_backend_rule_for_frobenius(intel, monkeypatch, rng):
    """'auto' on CPU: torch kernels for unmasked Frobenius only where MKL runs on an Intel CPU; same results."""
    from deepnmf.solvers import mu

    monkeypatch.setattr(mu, "mkl_on_intel", lambda: intel)
    monkeypatch.setattr(mu, "MIN_ENTRIES_TORCH_GRAM", 1000)  # the test's 40 x 30 problem counts as large
    cpu = torch.device("cpu")
    assert mu._kernels(cpu, "auto", gram=True) is (mu._TorchKernels if intel else mu._NumpyKernels)
    assert mu._kernels(cpu, "auto", gram=False) is mu._NumpyKernels  # KL, IS, masks: numpy everywhere
    assert mu._kernels(cpu, "numpy", gram=True) is mu._NumpyKernels
    X = torch.from_numpy(rng.random((40, 30)))
    runs = {}
    for backend in ("auto", "numpy", "torch"):
        W, H = _start(X)
        runs[backend] = multiplicative_updates(X, W, H, beta=2.0, max_iter=30, tol=0, backend=backend).losses
    torch.testing.assert_close(torch.tensor(runs["auto"]), torch.tensor(runs["torch" if intel else "numpy"]),
                               rtol=0, atol=0)
    torch.testing.assert_close(torch.tensor(runs["numpy"]), torch.tensor(runs["torch"]), rtol=1e-9, atol=0)
    chosen = []
    pick = mu._kernels
    monkeypatch.setattr(mu, "_kernels", lambda *a, **kw: chosen.append(pick(*a, **kw)) or chosen[-1])
    small = torch.from_numpy(rng.random((20, 30)))  # 600 entries: numpy's lower overhead wins whatever the CPU
    multiplicative_updates(small, *_start(small), beta=2.0, max_iter=5, tol=0)
    multiplicative_updates(X, *_start(X), beta=2.0, max_iter=5, tol=0)
    assert chosen == [mu._NumpyKernels, mu._TorchKernels if intel else mu._NumpyKernels]
