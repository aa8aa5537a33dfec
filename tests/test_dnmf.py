"""Discriminative NMF: training lowers the target divergence and helps on held-out mixtures."""
import numpy as np
import pytest

from deepnmf import NMF, DiscriminativeNMF
from deepnmf.exceptions import DataError


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
