"""Initialisations against scikit-learn's and their properties."""
import numpy as np
import pytest
import torch
from sklearn.decomposition._nmf import _initialize_nmf

from deepnmf.exceptions import DataError, ParameterError
from deepnmf.init import initialize, randomized_svd


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_nndsvd_matches_scikit_learn(init, rng):
    # a clear spectral gap after rank 5, so scikit-learn's randomised SVD is accurate too
    X = rng.random((40, 5)) @ rng.random((5, 30)) + 1e-4 * rng.random((40, 30))
    W_ref, H_ref = _initialize_nmf(X, 5, init=init, random_state=0)
    W, H = initialize(torch.from_numpy(X), 5, init=init, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(W.numpy() @ H.numpy(), W_ref @ H_ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(W.numpy(), W_ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
def test_nonnegative_shapes_dtype_and_reproducible(init, rng):
    X = torch.from_numpy(rng.random((25, 18)).astype(np.float32))
    W1, H1 = initialize(X, 4, init=init, generator=torch.Generator().manual_seed(3))
    W2, H2 = initialize(X, 4, init=init, generator=torch.Generator().manual_seed(3))
    assert W1.shape == (25, 4) and H1.shape == (4, 18)
    assert W1.dtype == torch.float32 and H1.dtype == torch.float32
    assert bool((W1 >= 0).all()) and bool((H1 >= 0).all())
    assert torch.equal(W1, W2) and torch.equal(H1, H2)
    if init in ("nndsvda", "nndsvdar", "random"):
        assert bool((W1 > 0).all()) and bool((H1 > 0).all()), "zeros never move under MU"


def test_randomized_svd_matches_exact(rng):
    A = rng.random((300, 8)) @ rng.random((8, 250)) + 1e-3 * rng.random((300, 250))
    U, S, Vh = randomized_svd(torch.from_numpy(A), 6, generator=torch.Generator().manual_seed(0))
    S_exact = np.linalg.svd(A, compute_uv=False)[:6]
    np.testing.assert_allclose(S.numpy(), S_exact, rtol=1e-6)


def test_errors(rng):
    X = torch.from_numpy(rng.random((5, 4)))
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ParameterError, match="n_components <= min"):
        initialize(X, 6, init="nndsvda", generator=g)
    with pytest.raises(ParameterError, match="init must be one of"):
        initialize(X, 2, init="svd", generator=g)
    with pytest.raises(ParameterError, match="needs both W and H"):
        initialize(X, 2, init="custom", generator=g)
    with pytest.raises(DataError, match="expected"):
        initialize(X, 2, init="custom", generator=g, W=torch.ones(5, 3), H=torch.ones(2, 4))
    W, H = torch.ones(5, 2, dtype=X.dtype), torch.ones(2, 4, dtype=X.dtype)
    with pytest.raises(DataError, match="custom W contains 1 NaN"):
        initialize(X, 2, init="custom", generator=g, W=W.index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"), dtype=X.dtype)), H=H)
    with pytest.raises(DataError, match="Negative values in data passed to custom H"):
        initialize(X, 2, init="custom", generator=g, W=W, H=-H)
    with pytest.raises(DataError, match="custom H is all zeros"):
        initialize(X, 2, init="custom", generator=g, W=W, H=0 * H)


def test_custom_factors_are_copied_c_contiguous(rng):
    X = torch.from_numpy(rng.random((12, 9)))
    W = torch.from_numpy(np.asfortranarray(rng.random((12, 3))))
    H = torch.from_numpy(np.asfortranarray(rng.random((3, 9))))
    assert not H.is_contiguous()
    W0, H0 = initialize(X, 3, init="custom", W=W, H=H, generator=torch.Generator())
    assert W0.is_contiguous() and H0.is_contiguous()
    torch.testing.assert_close(W0, W)
    torch.testing.assert_close(H0, H)
    H0[0, 0] = -1.0
    assert float(H[0, 0]) >= 0  # a copy, not a view
