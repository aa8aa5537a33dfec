"""Coordinate descent (deepnmf.solvers.cd): HALS for Frobenius, projected Newton for KL.

Properties: HALS is scikit-learn's cd to rounding (same start, same orders),
its objective never rises (exact coordinate minimisation: plain, accelerated,
masked, with penalties and fixed atoms), planted factors are recovered,
float32 matches float64, the torch passes (CUDA's code path) match the
compiled kernels, the thread split changes nothing, missing entries are
ignored, and bad input is a clear error.
"""
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import NMF as SkNMF
from sklearn.decomposition._nmf import _initialize_nmf

from deepnmf import NMF, non_negative_factorization
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.matching import match_components
from deepnmf.solvers.cd import coordinate_descent, inner_passes


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    X = rng.random((50, 6)) @ rng.random((6, 30)) + 0.05 * rng.random((50, 30))
    W0, H0 = _initialize_nmf(X, 6, init="random", random_state=0)
    return X, W0, H0


def _run(X, W0, H0, **kw):
    W, H = torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())
    return coordinate_descent(torch.from_numpy(X), W, H, **kw)


@pytest.mark.parametrize("params", [{}, {"alpha_W": 0.02, "l1_ratio": 0.5}, {"shuffle": True, "alpha_W": 0.01}])
def test_hals_is_scikit_learns_cd(problem, params):
    X, W0, H0 = problem
    kw = dict(n_components=6, solver="cd", init="custom", max_iter=80, tol=1e-6, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkNMF(**kw)
        W_ref = ref.fit_transform(X, W=W0.copy(), H=H0.copy())
        ours = NMF(**kw)
        W = ours.fit_transform(X, W=W0.copy(), H=H0.copy())
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.components_, ref.components_, rtol=1e-9, atol=1e-12)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.reconstruction_err_ == pytest.approx(ref.reconstruction_err_, rel=1e-9)


@pytest.mark.parametrize("case", ["plain", "accelerated", "penalties", "mask", "fixed", "masked-penalties"])
def test_hals_objective_never_rises(problem, case, rng):
    X, W0, H0 = problem
    kw = {"max_iter": 60, "tol": 0}
    if case == "accelerated":
        kw["inner"] = None
    if "penalties" in case:
        kw.update(l1_reg_W=0.3, l2_reg_W=0.2, l1_reg_H=0.1, l2_reg_H=0.4)
    if "mask" in case:
        kw["mask"] = torch.from_numpy((rng.random(X.shape) > 0.3).astype(float))
    if case == "fixed":
        kw["fixed_components"] = torch.tensor([True, False, True, False, False, False])
    res = _run(X, W0, H0, **kw)
    steps = np.diff(res.losses)
    assert np.all(steps <= 1e-12 * res.losses[0]), steps.max()
    assert res.losses[-1] < 0.5 * res.losses[0]
    assert (res.W >= 0).all() and (res.H >= 0).all()
    if case == "fixed":
        np.testing.assert_array_equal(res.H.numpy()[[0, 2]], H0[[0, 2]])


def test_accelerated_hals_needs_fewer_iterations_for_the_same_fit(problem):
    X, W0, H0 = problem
    plain = _run(X, W0, H0, max_iter=200, tol=0)
    fast = _run(X, W0, H0, max_iter=200, tol=0, inner=None)
    target = plain.losses[-1]
    reached = next(i for i, v in enumerate(fast.losses) if v <= target)
    assert reached < 200 and inner_passes(50, 30, 6) > 1


def test_newton_cd_decreases_kl_and_beats_mu_per_iteration(problem):
    X, W0, H0 = problem
    res = _run(X, W0, H0, beta=1.0, max_iter=40, tol=0)
    steps = np.diff(res.losses)
    assert np.all(steps <= 1e-10 * res.losses[0])  # not guaranteed by the method (Newton can overshoot); holds here
    P = res.W.numpy() @ res.H.numpy()
    naive = np.sum(X * np.log(X / P) - X + P)
    assert res.losses[-1] == pytest.approx(naive, rel=1e-9)
    _, _, n = non_negative_factorization(X, W0.copy(), H0.copy(), init="custom", solver="mu", beta_loss=1,
                                         max_iter=40, tol=0)
    mu = NMF(6, solver="mu", beta_loss=1, init="custom", max_iter=40, tol=0)
    mu.fit(X, W=W0.copy(), H=H0.copy())
    assert n == 40 and res.losses[-1] < mu.loss_curve_[-1]


@pytest.mark.parametrize("solver, beta, rel_err", [("cd", 2.0, 1e-6), ("newton-cd", 1.0, 1e-6)])
def test_planted_factors_recovered(solver, beta, rel_err):
    rng = np.random.default_rng(0)
    W_true = rng.random((80, 4)) * (rng.random((80, 4)) > 0.4)
    H_true = rng.random((4, 25)) * (rng.random((4, 25)) > 0.4)
    X = W_true @ H_true
    est = NMF(4, solver=solver, beta_loss=beta, init="nndsvda", max_iter=1500, tol=0, random_state=0)
    W = est.fit_transform(X)
    assert np.linalg.norm(X - W @ est.components_) / np.linalg.norm(X) < rel_err
    _, cosines = match_components(H_true, est.components_)
    assert cosines.min() > 0.99


@pytest.mark.parametrize("solver, beta, masked", [("cd", 2, False), ("cd", 2, True), ("newton-cd", 1, False),
                                                  ("newton-cd", 1, True)])
def test_float32_matches_float64(problem, solver, beta, masked, rng):
    X, _, _ = problem
    mask = (rng.random(X.shape) > 0.2).astype(float) if masked else None
    a = NMF(6, solver=solver, beta_loss=beta, max_iter=50, tol=0, random_state=0)
    b = NMF(6, solver=solver, beta_loss=beta, max_iter=50, tol=0, random_state=0)
    W64 = a.fit_transform(X, mask=mask)
    W32 = b.fit_transform(X.astype(np.float32), mask=None if mask is None else mask.astype(np.float32))
    assert W32.dtype == np.float32
    np.testing.assert_allclose(W32 @ b.components_, W64 @ a.components_, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("beta, masked", [(2.0, False), (2.0, True), (1.0, False), (1.0, True)])
def test_torch_passes_match_compiled_kernels(problem, beta, masked, rng):
    """The torch passes are what CUDA runs: on CPU they must agree with the numba kernels."""
    X, W0, H0 = problem
    mask = torch.from_numpy((rng.random(X.shape) > 0.25).astype(float)) if masked else None
    fixed = torch.tensor([False, True, False, False, False, False])
    a = _run(X, W0, H0, beta=beta, max_iter=15, tol=0, mask=mask, fixed_components=fixed, l1_reg_W=0.1,
             l2_reg_H=0.2, shuffle=True, random_state=np.random.RandomState(1))
    b = _run(X, W0, H0, beta=beta, max_iter=15, tol=0, mask=mask, fixed_components=fixed, l1_reg_W=0.1,
             l2_reg_H=0.2, shuffle=True, random_state=np.random.RandomState(1), backend="torch")
    np.testing.assert_allclose(a.W.numpy(), b.W.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.H.numpy(), b.H.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-9)


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_thread_split_changes_nothing(beta):
    rng = np.random.default_rng(1)
    X = rng.random((600, 120)) + 0.1
    W0, H0 = rng.random((600, 8)), rng.random((8, 120))
    one = _run(X, W0, H0, beta=beta, max_iter=4, tol=0, n_workers=1)
    two = _run(X, W0, H0, beta=beta, max_iter=4, tol=0, n_workers=2)
    np.testing.assert_array_equal(one.W.numpy(), two.W.numpy())
    np.testing.assert_array_equal(one.H.numpy(), two.H.numpy())


@pytest.mark.parametrize("solver, beta", [("cd", 2), ("newton-cd", 1)])
def test_missing_entries_are_ignored(problem, rng, solver, beta):
    X, W0, H0 = problem
    mask = (rng.random(X.shape) > 0.3).astype(float)
    garbage = np.where(mask == 0, 1e3 * rng.random(X.shape), X)
    fits = [NMF(6, solver=solver, beta_loss=beta, init="custom", max_iter=30, tol=0).fit(Y, W=W0.copy(), H=H0.copy(),
                                                                                         mask=mask)
            for Y in (X, garbage)]
    np.testing.assert_array_equal(fits[0].components_, fits[1].components_)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


def test_solver_errors(problem):
    X, W0, H0 = problem
    with pytest.raises(ParameterError, match="solver 'cd' does not handle beta_loss = 'kullback-leibler'"):
        NMF(2, solver="cd", beta_loss="kullback-leibler").fit(X)
    with pytest.raises(ParameterError, match="solver 'newton-cd' does not handle beta_loss = 2"):
        NMF(2, solver="newton-cd", beta_loss=2).fit(X)
    with pytest.raises(ParameterError, match="solver must be one of"):
        NMF(2, solver="als").fit(X)
    with pytest.raises(ParameterError, match="handles beta 2"):
        _run(X, W0, H0, beta=0.5)
    with pytest.raises(DataError, match="only 0"):
        _run(X, W0, H0, mask=torch.full(X.shape, 0.5, dtype=torch.float64))
    with pytest.raises(DataError, match="every entry as missing"):
        _run(X, W0, H0, mask=torch.zeros(X.shape, dtype=torch.float64))


def test_transform_with_cd_solves_the_convex_problem(problem):
    X, _, _ = problem
    est = NMF(6, solver="cd", max_iter=300, tol=1e-8, random_state=0)
    W_fit = est.fit_transform(X)
    W = est.transform(X)
    err = lambda A: np.linalg.norm(X - A @ est.components_)  # noqa: E731
    assert err(W) <= err(W_fit) * (1 + 1e-6)
