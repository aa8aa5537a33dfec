"""MiniBatchNMF: online multiplicative updates (scikit-learn's MiniBatchNMF), masks, fixed atoms, save/load.

The batch-equivalence property (the whole data as one batch, no forgetting:
batch multiplicative updates) is checked with masks and fixed atoms too;
scikit-learn's own expectations run in tests/test_sklearn_compat.py.
"""
import numpy as np
import pytest
import torch

from deepnmf import NMF, MiniBatchNMF, load_model
from deepnmf.exceptions import ParameterError
from deepnmf.models import make_estimator


@pytest.fixture
def X(rng):
    return rng.random((48, 4)) @ rng.random((4, 12)) + 0.05


@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 0.0])
@pytest.mark.parametrize("extra", ["none", "mask", "fixed"])
def test_whole_batch_without_forgetting_is_batch_mu(X, rng, beta, extra):
    kw = {}
    if extra == "mask":
        kw["mask"] = (rng.random(X.shape) > 0.2).astype(float)
    if extra == "fixed":
        kw["fixed_components"] = rng.random((1, X.shape[1]))
    common = dict(n_components=4, beta_loss=beta, random_state=0, tol=0, max_iter=60)
    W = NMF(solver="mu", **common).fit_transform(X, **kw)
    mb = MiniBatchNMF(batch_size=X.shape[0], forget_factor=0.0, max_no_improvement=None, **common)
    np.testing.assert_allclose(mb.fit_transform(X, **kw), W, rtol=1e-6, atol=1e-10)
    assert mb.n_steps_ == 60 and mb.n_iter_ == 60
    if extra == "fixed":
        np.testing.assert_array_equal(mb.components_[:1], kw["fixed_components"])


def test_partial_fit_equals_fit_over_the_same_batches(X, rng):
    H0 = rng.random((4, X.shape[1]))
    W0 = rng.random((X.shape[0], 4))
    kw = dict(n_components=4, init="custom", beta_loss="kullback-leibler", forget_factor=1.0, fresh_restarts=True,
              tol=0, max_no_improvement=None, random_state=0)
    full = MiniBatchNMF(batch_size=12, max_iter=2, **kw).fit(X, W=W0, H=H0)
    online = MiniBatchNMF(batch_size=12, **kw)
    for _ in range(2):
        for a in range(0, X.shape[0], 12):
            online.partial_fit(X[a:a + 12], W=W0[:12], H=H0)
    assert online.n_steps_ == full.n_steps_ == 8
    np.testing.assert_allclose(online.components_, full.components_, rtol=1e-10)


def test_minibatch_cost_falls_and_stays_nonnegative(rng):
    X = rng.random((400, 5)) @ rng.random((5, 20))
    est = MiniBatchNMF(5, batch_size=50, beta_loss="kullback-leibler", max_iter=30, random_state=0, tol=0,
                       max_no_improvement=None)
    W = est.fit_transform(X)
    assert (W >= 0).all() and (est.components_ >= 0).all()
    costs = np.asarray(est.loss_curve_)
    assert costs[-8:].mean() < 0.5 * costs[:8].mean()
    assert est.reconstruction_err_ < NMF(5, solver="mu", beta_loss=1, max_iter=3, tol=0,
                                         random_state=0).fit(X).reconstruction_err_


def test_float32_matches_float64_and_torch_in_torch_out(X):
    kw = dict(n_components=3, batch_size=16, beta_loss=1.0, max_iter=20, tol=0, random_state=0)
    H64 = MiniBatchNMF(**kw).fit(X).components_
    H32 = MiniBatchNMF(**kw).fit(X.astype(np.float32)).components_
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H64, rtol=1e-3, atol=1e-4)
    Ht = MiniBatchNMF(**kw).fit(torch.from_numpy(X)).components_
    assert isinstance(Ht, torch.Tensor)
    np.testing.assert_allclose(Ht.numpy(), H64, rtol=1e-12)


def test_save_load_then_partial_fit_continues_identically(tmp_path, X):
    est = make_estimator("minibatch-nmf", 3, batch_size=16, beta_loss=1.0, max_iter=3, random_state=0).fit(X)
    back = load_model(est.save(tmp_path / "mb"))
    assert type(back) is MiniBatchNMF and back.n_steps_ == est.n_steps_
    np.testing.assert_array_equal(back.components_, est.components_)
    est.partial_fit(X[:16])
    back.partial_fit(X[:16])
    np.testing.assert_allclose(back.components_, est.components_, rtol=1e-12)
    np.testing.assert_allclose(back.transform(X), est.transform(X), rtol=1e-12)


@pytest.mark.parametrize("params, match", [({"batch_size": 0}, "batch_size"), ({"forget_factor": 1.5}, "forget_factor"),
                                           ({"max_no_improvement": 0}, "max_no_improvement")])
def test_bad_parameters(X, params, match):
    with pytest.raises(ParameterError, match=match):
        MiniBatchNMF(2, **params).fit(X)


def test_partial_fit_on_the_streaming_frame_source(tmp_path, rng):
    """Corpora larger than memory: batches of deepnmf.datasets.streaming.StreamingFrames go to partial_fit."""
    import soundfile as sf

    from deepnmf.datasets.streaming import StreamingFrames

    t = np.arange(16000) / 16000
    for i, f0 in enumerate((220.0, 330.0)):
        sf.write(tmp_path / f"tone{i}.wav", 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size), 16000)
    stream = StreamingFrames([tmp_path], n_fft=256, hop=128, batch_size=64, seed=0)
    est = MiniBatchNMF(4, beta_loss="kullback-leibler", init="random", random_state=0)
    for batch in stream:
        est.partial_fit(batch + 1e-6)
    assert est.n_steps_ == 4 and tuple(est.components_.shape) == (4, 129)
    assert isinstance(est.components_, torch.Tensor) and bool((est.components_ >= 0).all())
    assert est.loss_curve_[-1] < est.loss_curve_[0]
