"""Discriminative NMF: training lowers the target divergence and helps on held-out mixtures."""
import numpy as np
import pytest
import torch

from deepnmf import NMF, DiscriminativeNMF
from deepnmf.exceptions import DataError, ParameterError


def _sources(rng, n_frames):
    """Target and interference with overlapping spectra and more structure than the dictionaries capture."""
    bins = np.arange(64)
    speech_atoms = np.stack([np.exp(-0.5 * ((bins - c) / 3.0) ** 2) for c in (10, 20, 30, 40, 50, 25)])
    noise_atoms = np.stack([np.exp(-0.5 * ((bins - c) / 12.0) ** 2) for c in (15, 35, 55)]) + 0.05
    S = rng.gamma(0.5, 1.0, (n_frames, 6)) @ speech_atoms
    N = rng.gamma(1.0, 0.7, (n_frames, 3)) @ noise_atoms
    return S, N


def _ser(S, S_hat):  # signal-to-error ratio of a magnitude estimate, in dB
    return 10 * np.log10(np.sum(S**2) / np.sum((S - S_hat) ** 2))


def test_discriminative_training_improves_separation(rng):
    S, N = _sources(rng, 600)
    Ws = NMF(4, beta_loss=1.0, max_iter=300, random_state=0).fit(S).components_
    Wn = NMF(2, beta_loss=1.0, max_iter=300, random_state=0).fit(N).components_
    X = S + N
    dnmf = DiscriminativeNMF(max_epochs=150, n_transform_iter=80, random_state=0)
    dnmf.fit(X, S, target_components=Ws, other_components=Wn)
    assert dnmf.loss_curve_[-1] < 0.9 * dnmf.loss_curve_[0]
    assert (dnmf.reconstruction_components_ >= 0).all()
    plain = DiscriminativeNMF(max_epochs=0, n_transform_iter=80).fit(X, S, target_components=Ws, other_components=Wn)
    S_test, N_test = _sources(np.random.default_rng(1), 300)
    X_test = S_test + N_test
    s_d, n_d = dnmf.separate(X_test)
    s_p, _ = plain.separate(X_test)
    np.testing.assert_allclose(s_d + n_d, X_test, rtol=1e-6)
    assert _ser(S_test, s_d) > _ser(S_test, s_p) + 0.5


def test_save_load_and_errors(tmp_path, rng):
    S, N = _sources(rng, 100)
    Ws = NMF(2, beta_loss=1.0, max_iter=50, random_state=0).fit(S).components_
    Wn = NMF(2, beta_loss=1.0, max_iter=50, random_state=0).fit(N).components_
    dnmf = DiscriminativeNMF(max_epochs=5, n_transform_iter=20).fit(S + N, S, target_components=Ws, other_components=Wn)
    dnmf.save(tmp_path / "d")
    back = DiscriminativeNMF.load(tmp_path / "d")
    np.testing.assert_allclose(back.separate(S + N)[0], dnmf.separate(S + N)[0])
    with pytest.raises(DataError, match="S has shape"):
        dnmf.fit(S + N, S[:10], target_components=Ws, other_components=Wn)
    with pytest.raises(DataError, match="bins"):
        dnmf.fit(S + N, S, target_components=Ws[:, :10], other_components=Wn)


def _small_problem(rng):
    S, N = _sources(rng, 80)
    Ws = NMF(2, beta_loss=1.0, max_iter=40, random_state=0).fit(S).components_
    Wn = NMF(2, beta_loss=1.0, max_iter=40, random_state=0).fit(N).components_
    return S + N, S, {"target_components": Ws, "other_components": Wn}


def test_training_runs_in_fit_module_full_batch(monkeypatch, rng):
    """One loop for torch models: DNMF trains through fit_module with one batch of every frame, no validation."""
    import deepnmf.training as training

    X, S, dicts = _small_problem(rng)
    calls = []
    real = training.fit_module
    monkeypatch.setattr(training, "fit_module", lambda *a, **k: calls.append(k) or real(*a, **k))
    model = DiscriminativeNMF(solver="adam", max_epochs=6, n_transform_iter=10).fit(X, S, **dicts)
    assert len(calls) == 1 and calls[0]["batch_size"] == X.shape[0]
    assert calls[0]["validation_fraction"] == 0 and calls[0]["early_stopping"] is False
    assert model.n_iter_ == 6 and len(model.loss_curve_) == 7


def test_loss_curve_is_the_divergence_of_each_dictionary(rng):
    """The curve's entries are d(S | S_hat) per element at the start and after each projected Adam step."""
    X, S, dicts = _small_problem(rng)
    curves = [DiscriminativeNMF(solver="adam", max_epochs=e, n_transform_iter=10).fit(X, S, **dicts) for e in (0, 3)]
    assert curves[0].loss_curve_[0] == curves[1].loss_curve_[0]
    model = curves[1]
    S_hat, _ = model.separate(X)
    S_hat = np.maximum(S_hat, 1e-12)  # the model's floor (deepnmf.divergences.EPS)
    ref = np.mean(S * np.log(S / S_hat) - S + S_hat)  # the KL divergence per element, written here
    assert model.loss_curve_[-1] == pytest.approx(ref, rel=1e-9)
    assert model.loss_curve_[-1] < model.loss_curve_[0]


def test_callback_records_and_stop(rng, capsys):
    X, S, dicts = _small_problem(rng)
    seen = []

    def callback(info):
        seen.append(info)
        return info.epoch == 3

    model = DiscriminativeNMF(max_epochs=20, n_transform_iter=10, verbose=1).fit(X, S, **dicts, callback=callback)
    assert [i.epoch for i in seen] == [1, 2, 3] and all(i.max_epochs == 20 for i in seen)
    assert model.n_iter_ == 3 and len(model.loss_curve_) == 4
    assert [i.loss for i in seen] == pytest.approx(model.loss_curve_[:3], rel=1e-6)  # the loss each step started from
    assert capsys.readouterr().err == ""  # verbose prints every 10 epochs


def test_inverse_transform_takes_activations_named_X(rng):
    X, S, dicts = _small_problem(rng)
    model = DiscriminativeNMF(max_epochs=1, n_transform_iter=10).fit(X, S, **dicts)
    W = model.transform(X)
    np.testing.assert_allclose(model.inverse_transform(X=W), W @ model.components_)
    with pytest.raises(DataError, match="X has 3 columns"):
        model.inverse_transform(np.ones((2, 3)))


@pytest.mark.parametrize("beta", [1.0, 2.0, 0.5, 0.0])
def test_mu_terms_split_the_autograd_gradient(beta):
    from deepnmf.divergences import beta_divergence
    from deepnmf.models.dnmf import mu_terms, wiener_split

    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 9, generator=g, dtype=torch.float64) + 0.1
    S = X * torch.rand(30, 9, generator=g, dtype=torch.float64)
    W = torch.rand(30, 5, generator=g, dtype=torch.float64) + 0.1
    R = (torch.rand(5, 9, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    loss = beta_divergence(S, wiener_split(X, W, R, 3)[0], beta)
    loss.backward()
    num, den, value = mu_terms(X, W, S, R.detach(), 3, beta)
    assert float(value) == pytest.approx(float(loss.detach()), rel=1e-10)
    torch.testing.assert_close(den - num, R.grad, rtol=1e-8, atol=1e-10)  # gradient = den - num
    assert bool((num >= 0).all()) and bool((den >= 0).all())
    # the training loop's form: the data part of the divergence summed once, the same value and terms
    from deepnmf.models.dnmf import _data_sum
    data_sum = _data_sum(S, beta)
    assert (data_sum is None) == (beta == 0.5)
    num2, den2, value2 = mu_terms(X, W, S, R.detach(), 3, beta, data_sum=data_sum)
    assert float(value2) == pytest.approx(float(loss.detach()), rel=1e-10)
    torch.testing.assert_close(num2, num, rtol=1e-12, atol=0)
    torch.testing.assert_close(den2, den, rtol=1e-12, atol=0)


def test_mu_solver_lowers_the_training_divergence(tmp_path):
    from deepnmf import DiscriminativeNMF

    g = torch.Generator().manual_seed(1)
    Hs, Hn = torch.rand(4, 20, generator=g) + 0.05, torch.rand(3, 20, generator=g) + 0.05
    Ws, Wn = torch.rand(200, 4, generator=g), torch.rand(200, 3, generator=g)
    S, N = Ws @ Hs, Wn @ Hn
    X = S + N
    est = DiscriminativeNMF(solver="mu", max_epochs=30, random_state=0).fit(
        X.numpy(), S.numpy(), target_components=(Hs * 1.3 + 0.1).numpy(), other_components=(Hn + 0.1).numpy())
    curve = est.loss_curve_
    assert len(curve) == 31 and curve[-1] < 0.8 * curve[0]
    assert np.all(est.reconstruction_components_ >= 0)
    est.save(tmp_path / "m")
    from deepnmf import load_model

    back = load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.reconstruction_components_, est.reconstruction_components_)
    with pytest.raises(ParameterError, match="solver"):
        DiscriminativeNMF(solver="lbfgs").fit(X.numpy(), S.numpy(), target_components=Hs.numpy(),
                                              other_components=Hn.numpy())
