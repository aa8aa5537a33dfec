"""The NMF estimator: scikit-learn drop-in behaviour, kinds in = kinds out, bad input, save/load."""
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from deepnmf import NMF
from deepnmf.exceptions import DataError, ModelFileError, NotFittedError, ParameterError
from deepnmf.models.nmf import non_negative_factorization


@pytest.fixture
def X(rng):
    return rng.random((40, 12))


def test_fit_transform_shapes_and_attributes(X):
    est = NMF(4, beta_loss="kullback-leibler", max_iter=50, random_state=0)
    W = est.fit_transform(X)
    assert W.shape == (40, 4) and isinstance(W, np.ndarray) and W.dtype == np.float64
    assert est.components_.shape == (4, 12) and est.n_features_in_ == 12
    assert 1 <= est.n_iter_ <= 50 and len(est.loss_curve_) == est.n_iter_ + 1
    assert est.reconstruction_err_ == pytest.approx(np.sqrt(2 * est.loss_curve_[-1]), rel=1e-6)
    np.testing.assert_allclose(est.inverse_transform(W), W @ est.components_)


def test_kind_and_dtype_round_trip(X):
    Xt = torch.from_numpy(X).float()
    est = NMF(3, max_iter=20, random_state=0)
    W = est.fit_transform(Xt)
    assert isinstance(W, torch.Tensor) and W.dtype == torch.float32
    assert isinstance(est.components_, torch.Tensor)
    W32 = NMF(3, max_iter=20, random_state=0).fit_transform(X.astype(np.float32))
    assert W32.dtype == np.float32
    assert isinstance(est.transform(X), np.ndarray)


def test_transform_matches_fit_activations(X):
    est = NMF(3, beta_loss=1.0, max_iter=400, tol=0, random_state=0)
    W_fit = est.fit_transform(X)
    W_tr = est.transform(X, max_iter=2000)
    # transform solves the convex problem in W: never worse than the fitted activations
    from deepnmf.divergences import beta_divergence
    H = torch.from_numpy(est.components_)
    d_fit = beta_divergence(torch.from_numpy(X), torch.from_numpy(W_fit) @ H, 1.0).item()
    d_tr = beta_divergence(torch.from_numpy(X), torch.from_numpy(W_tr) @ H, 1.0).item()
    assert d_tr <= d_fit * (1 + 1e-3)


def test_same_objective_as_scikit_learn_estimator(X):
    from sklearn.decomposition import NMF as Sk
    from sklearn.decomposition._nmf import _beta_divergence

    for beta, solver in (("frobenius", "mu"), ("frobenius", "cd"), ("kullback-leibler", "mu")):
        ours = NMF(4, beta_loss=beta, solver=solver, init="nndsvda", max_iter=200, tol=0, random_state=0)
        theirs = Sk(4, beta_loss=beta, solver=solver, init="nndsvda", max_iter=200, tol=0, random_state=0)
        W_ours = ours.fit_transform(X)
        a = _beta_divergence(X, W_ours, ours.components_, beta)
        b = _beta_divergence(X, theirs.fit_transform(X), theirs.components_, beta)
        assert abs(a - b) / b < 1e-2
        expected = _beta_divergence(X, W_ours, ours.components_, beta, square_root=True)
        assert ours.reconstruction_err_ == pytest.approx(expected, rel=1e-6)


def test_reproducible_random_state(X):
    a = NMF(3, init="random", max_iter=30, random_state=7).fit(X).components_
    b = NMF(3, init="random", max_iter=30, random_state=7).fit(X).components_
    c = NMF(3, init="random", max_iter=30, random_state=8).fit(X).components_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_semi_supervised_fixed_components(rng):
    speech = rng.random((2, 20))
    X = rng.random((50, 2)) @ speech + rng.random((50, 1)) @ rng.random((1, 20))
    est = NMF(3, beta_loss=1.0, max_iter=100, random_state=0)
    est.fit(X, fixed_components=speech)
    np.testing.assert_array_equal(est.components_[:2], speech)


def test_mask_and_penalties(X, rng):
    mask = (rng.random(X.shape) > 0.2).astype(float)
    est = NMF(3, beta_loss=1.0, max_iter=50, alpha_W=0.01, l1_ratio=1.0, random_state=0)
    est.fit(X, mask=mask)
    assert np.all(np.diff(est.loss_curve_) <= 1e-10 * est.loss_curve_[0])
    with pytest.raises(DataError, match="mask has shape"):
        est.fit(X, mask=mask[:5])


def test_non_negative_factorization_functional(X):
    W, H, n_iter = non_negative_factorization(X, n_components=3, beta_loss=1.0, max_iter=40, random_state=0)
    assert W.shape == (40, 3) and H.shape == (3, 12) and n_iter >= 1
    W2, H2, _ = non_negative_factorization(X, H=H, update_H=False, beta_loss=1.0)
    np.testing.assert_array_equal(H2, H)
    assert W2.shape == (40, 3)
    stacked = NMF.from_components(np.vstack([H, H[:1]]), beta_loss=1.0)
    assert stacked.transform(X).shape == (40, 4)


def test_from_components_save_load(tmp_path, rng):
    H = rng.random((3, 12))
    est = NMF.from_components(H, beta_loss="kullback-leibler")
    back = NMF.load(est.save(tmp_path / "given"))
    np.testing.assert_array_equal(back.components_, H)
    assert not hasattr(back, "reconstruction_err_")


@pytest.mark.parametrize(
    "data, match",
    [
        (-np.ones((4, 3)), "Negative values in data"),
        (np.full((4, 3), np.nan), "NaN or infinite"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones(5), "2-D array"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_bad_data(data, match):
    with pytest.raises(DataError, match=match):
        NMF(1).fit(data)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components must be an integer"),
        ({"n_components": 5, "init": "nndsvda"}, "n_components <= min"),
        ({"beta_loss": "kullback"}, "beta_loss must be one of"),
        ({"init": "pca"}, "init must be one of"),
        ({"tol": -1}, "tol must be"),
        ({"l1_ratio": 2.0}, "l1_ratio must be in"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters(params, match, rng):
    with pytest.raises(ParameterError, match=match):
        NMF(**{"n_components": 2, **params}).fit(rng.random((4, 3)))


def test_transform_errors(X):
    with pytest.raises(NotFittedError, match="not fitted"):
        NMF(2).transform(X)
    est = NMF(2, max_iter=5).fit(X)
    with pytest.raises(DataError, match="X has 5 features, but NMF is expecting 12"):
        est.transform(X[:, :5])


def test_save_load_round_trip(tmp_path, X):
    est = NMF(3, beta_loss=0.5, max_iter=30, random_state=0).fit(X)
    est.save(tmp_path / "m")
    back = NMF.load(tmp_path / "m")
    np.testing.assert_array_equal(back.components_, est.components_)
    assert back.get_params() == est.get_params()
    np.testing.assert_allclose(back.transform(X), est.transform(X))
    assert back.loss_curve_ == pytest.approx(est.loss_curve_)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"] == "NMF" and "deepnmf_version" in cfg


def test_corrupt_model_folders(tmp_path, X):
    est = NMF(2, max_iter=5).fit(X)
    folder = est.save(tmp_path / "m")
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        NMF.load(folder)
    weights.unlink()
    with pytest.raises(ModelFileError, match="no weights.safetensors"):
        NMF.load(folder)
    with pytest.raises(ModelFileError, match="does not exist"):
        NMF.load(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    (tmp_path / "bad" / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        NMF.load(tmp_path / "bad")


def test_clone_and_params():
    est = NMF(3, beta_loss=1.5, alpha_W=0.1)
    assert clone(est).get_params() == est.get_params()


def test_callback_gets_one_record_per_iteration_and_can_stop(X):
    seen = []

    def callback(info):
        seen.append(info)
        return info.epoch == 5

    est = NMF(3, beta_loss="kl", max_iter=50, tol=0, random_state=0)
    W = est.fit_transform(X, callback=callback)
    assert [i.epoch for i in seen] == [1, 2, 3, 4, 5] and est.n_iter_ == 5 and W.shape == (40, 3)
    assert all(i.max_epochs == 50 and i.stage == "" for i in seen)
    assert [i.loss for i in seen] == est.loss_curve_[1:]
    assert np.all(np.diff([i.elapsed for i in seen]) >= 0)
    seen.clear()
    NMF(3, max_iter=50, tol=0, random_state=0).fit(X, callback=callback)  # fit passes it on
    assert len(seen) == 5


def test_verbose_prints_every_ten_iterations_through_the_callback(X, capsys):
    seen = []
    NMF(3, max_iter=30, tol=0, verbose=1, random_state=0).fit(X, callback=lambda i: seen.append(i.epoch))
    lines = capsys.readouterr().err.strip().splitlines()
    assert seen == list(range(1, 31))
    assert [line.split()[2] for line in lines] == ["10", "20", "30"] and lines[0].startswith("[NMF] iteration")


@pytest.mark.parametrize("alias, name", [("kl", "kullback-leibler"), ("is", "itakura-saito"),
                                         ("euclidean", "frobenius"), ("poisson", "kullback-leibler")])
def test_beta_loss_aliases_fit_the_same_model(X, alias, name):
    a = NMF(3, beta_loss=alias, max_iter=20, random_state=0).fit(X + 0.01)
    b = NMF(3, beta_loss=name, max_iter=20, random_state=0).fit(X + 0.01)
    assert a.loss_curve_ == b.loss_curve_
