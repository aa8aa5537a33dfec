"""beta_divergence against a naive formula written here and against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.decomposition._nmf import _beta_divergence

from deepnmf import divergences as D
from deepnmf.divergences import beta_divergence, beta_from_loss
from deepnmf.exceptions import ParameterError


def naive(x: float, y: float, beta: float) -> float:
    if beta == 0:
        return x / y - np.log(x / y) - 1
    if beta == 1:
        return (x * np.log(x / y) if x > 0 else 0.0) - x + y
    return (x**beta + (beta - 1) * y**beta - beta * x * y ** (beta - 1)) / (beta * (beta - 1))


@pytest.mark.parametrize("beta", [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_matches_naive_elementwise_formula(beta, rng):
    X = rng.random((7, 5)) + 0.05
    Y = rng.random((7, 5)) + 0.05
    expected = sum(naive(x, y, beta) for x, y in zip(X.ravel(), Y.ravel()))
    got = beta_divergence(torch.from_numpy(X), torch.from_numpy(Y), beta)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0, 3.0])
def test_matches_scikit_learn(beta, rng):
    X = rng.random((20, 15)) + 0.01
    W, H = rng.random((20, 4)), rng.random((4, 15))
    expected = _beta_divergence(X, W, H, beta)
    got = beta_divergence(torch.from_numpy(X), torch.from_numpy(W @ H), beta)
    assert got.item() == pytest.approx(expected, rel=1e-8)


def test_zero_data_and_model_are_safe():
    X = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    Y = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    for beta in (0.0, 0.5, 1.0, 2.0):
        assert torch.isfinite(beta_divergence(X, Y, beta))
    # KL with x = 0 is exactly y; with x = y it is 0
    assert beta_divergence(torch.tensor([0.0]), torch.tensor([2.5]), 1).item() == pytest.approx(2.5)
    # zeros of the model are floored at EPS=1e-12, so each contributes exactly EPS
    assert beta_divergence(X, X, 1).item() == pytest.approx(2e-12, abs=1e-15)


def test_mask_ignores_entries(rng):
    X = torch.from_numpy(rng.random((6, 6)))
    Y = X.clone()
    Y[0, 0] = 100.0
    mask = torch.ones_like(X)
    mask[0, 0] = 0
    for beta in (0.0, 1.0, 2.0, 0.5):
        assert beta_divergence(X, Y, beta, mask=mask).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("names, beta", [
    (("frobenius", "euclidean", "gaussian", 2, 2.0, np.float32(2)), 2.0),
    (("kullback-leibler", "kl", "poisson", 1), 1.0),
    (("itakura-saito", "is", "exponential", 0.0), 0.0),
])
def test_one_vocabulary_for_every_name(names, beta):
    for name in names:
        assert beta_from_loss(name) == beta
        assert D.loss_name(name) == {2.0: "frobenius", 1.0: "kullback-leibler", 0.0: "itakura-saito"}[beta]
        assert D.short_loss_name(name) == {2.0: "frobenius", 1.0: "kl", 0.0: "is"}[beta]
        assert D.likelihood_name(name) == {2.0: "gaussian", 1.0: "poisson", 0.0: "exponential"}[beta]


def test_names_and_errors():
    assert beta_from_loss(1.5) == 1.5
    with pytest.raises(ParameterError, match="beta_loss must be one of"):
        beta_from_loss("kullback")
    with pytest.raises(ParameterError, match="finite"):
        beta_from_loss(float("nan"))
    with pytest.raises(ParameterError, match="string or a real number"):
        beta_from_loss(True)
    with pytest.raises(ParameterError, match="has no name"):
        D.loss_name(1.5)
    with pytest.raises(ParameterError, match="only beta 2, 1 and 0"):
        D.model_part(torch.ones(2), torch.ones(2), 1.5)


def test_one_floor_constant_per_use():
    assert D.EPS == 1e-12 and D.IMPLICIT_EPS == 1e-8 and D.RELATIVE_EPS == 1e-8
    from deepnmf import ImplicitNMF
    from deepnmf.solvers.mu import multiplicative_updates

    assert ImplicitNMF.eps == D.IMPLICIT_EPS
    assert multiplicative_updates.__kwdefaults__["eps"] == D.EPS


@pytest.mark.parametrize("loss", ["kl", "is", "frobenius"])
def test_model_part_plus_data_term_is_the_naive_divergence(loss, rng):
    X = rng.random((6, 5)) + 0.05
    Y = rng.random((6, 5)) + 0.05
    beta = beta_from_loss(loss)
    expected = np.mean([naive(x, y, beta) for x, y in zip(X.ravel(), Y.ravel())])
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    got = float(D.model_part(Xt, Yt, loss).mean()) + D.data_term(Xt, loss)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("loss", ["kl", "is", "frobenius"])
def test_divergence_terms_value_and_gradient_against_autograd_of_a_naive_formula(loss, rng):
    X = torch.from_numpy(rng.random(30) + 0.01)
    Y = torch.from_numpy(rng.random(30) + 0.01).requires_grad_(True)
    eps = 1e-8
    with torch.no_grad():
        Y[:2] = 1e-10  # below the floor: the gradient stops there (except KL's linear term)
    Yc = torch.maximum(Y, torch.tensor(eps, dtype=Y.dtype))  # written without the module's helpers
    naive_terms = {"kl": Y - X * torch.log(Yc), "is": X / Yc + torch.log(Yc), "frobenius": 0.5 * (X - Y) ** 2}[loss]
    naive_terms.sum().backward()
    value, dY = D.divergence_terms(X, Y.detach(), loss, eps)
    assert float(value) == pytest.approx(float(naive_terms.detach().sum()), rel=1e-12)
    torch.testing.assert_close(dY, Y.grad, rtol=1e-10, atol=1e-12)
    value_only, none = D.divergence_terms(X, Y.detach(), loss, eps, gradient=False)
    assert none is None and float(value_only) == pytest.approx(float(value), rel=1e-12)


def test_floor_conventions_differ_only_below_the_floor():
    X = torch.tensor([0.5, 0.0, 2.0], dtype=torch.float64)
    Y = torch.tensor([1e-14, 1e-14, 1.5], dtype=torch.float64)
    everywhere = beta_divergence(X, Y, "kl", reduction="none")
    in_logs = beta_divergence(X, Y, "kl", reduction="none", floor_linear=False)
    torch.testing.assert_close(everywhere - in_logs, torch.tensor([1e-12 - 1e-14, 1e-12 - 1e-14, 0.0],
                                                                  dtype=torch.float64))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0, 0.5, 3.0])
def test_fused_mu_kernel_agrees_with_beta_divergence(beta, masked, rng):
    """The solver's in-place elementwise pass (value of the objective) is the divergence of this module."""
    from deepnmf.solvers._kernels import _elementwise, _NumpyKernels
    from deepnmf.solvers.mu import _data_constant

    X = rng.random((12, 9)) ** 2
    X[0, :3] = 0.0  # exact zeros of the data
    WH = rng.random((12, 9)) + 0.01
    WH[1, 0] = 1e-15  # a model value below the floor
    M = (rng.random(X.shape) > 0.3).astype(np.float64) if masked else None
    Xs = np.maximum(X, D.EPS) if beta <= 0 else X.copy()  # what the solver does to X before the passes
    if M is not None:
        Xs = Xs * M
    if beta == 2.0 and M is None:
        M = np.ones_like(X)  # the solver's unmasked Frobenius never forms W @ H; an all-ones mask is the same
    P, N, Q, S = (np.empty_like(X) for _ in range(4))
    P[:] = WH
    if beta == 1.0:  # the solver's KL buffers: N overwrites the model, the denominator matrix is the mask
        N, Q = P, M
    elif beta == 2.0:
        N = Xs
    fused = _data_constant(Xs, M, beta, D.EPS) + _elementwise(_NumpyKernels, beta, D.EPS, Xs, M, P, N, Q, S, True)
    Mt = None if M is None else torch.from_numpy(M)
    ref = beta_divergence(torch.from_numpy(X), torch.from_numpy(WH), beta, mask=Mt).item()
    assert fused == pytest.approx(ref, rel=1e-10)
