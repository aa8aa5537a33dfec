"""beta_divergence against a naive formula written here and against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.decomposition._nmf import _beta_divergence

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


def test_names_and_errors():
    assert beta_from_loss("itakura-saito") == 0.0
    assert beta_from_loss("kullback-leibler") == 1.0
    assert beta_from_loss(1.5) == 1.5
    with pytest.raises(ParameterError, match="beta_loss must be one of"):
        beta_from_loss("kl")
    with pytest.raises(ParameterError, match="finite"):
        beta_from_loss(float("nan"))
