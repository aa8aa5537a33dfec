"""``librosa.decompose.decompose(S, transformer=est)`` with each deepnmf estimator on a generated spectrogram.

librosa's orientation is ``S`` ``(n_bins, n_frames)``; it calls
``est.fit_transform(S.T)`` and returns ``components`` ``(n_bins, k)`` and
``activations`` ``(k, n_frames)``. The reference scale for the reconstruction
error is scikit-learn's own NMF (librosa's default transformer) on the same ``S``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from deepnmf import NMF, VAENMF, ImplicitNMF
from deepnmf.datasets.synthetic import harmonic_notes

librosa = pytest.importorskip("librosa")

SR = 8000
RANK = 3
#: (estimator, bound on its relative error as a multiple of scikit-learn's at the same rank)
ESTIMATORS = {
    "nmf": (lambda: NMF(RANK, max_iter=200, random_state=0), 1.05),
    "nmf-kl": (lambda: NMF(RANK, beta_loss="kullback-leibler", max_iter=200, random_state=0), 1.5),
    "vae-nmf": (lambda: VAENMF(RANK, hidden=(32,), max_epochs=150, lr=3e-3, random_state=0), 2.5),
    "implicit": (lambda: ImplicitNMF(RANK, sr=SR, max_epochs=200, n_octaves=6, hidden=16, random_state=0), 1.6),
}


def _relative_error(S, components, activations):
    return float(np.linalg.norm(S - components @ activations) / np.linalg.norm(S))


@pytest.fixture(scope="module")
def spectrogram():
    """|STFT| of three generated harmonic notes, ``(129, 251)`` float64, and scikit-learn's error at each rank."""
    x = harmonic_notes(RANK, duration=2.0, sr=SR, seed=1).audio.astype(np.float64)
    S = np.abs(librosa.stft(x, n_fft=256, hop_length=64))
    with warnings.catch_warnings():  # scikit-learn's 500 iterations are the reference, converged or not
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = {k: _relative_error(S, *librosa.decompose.decompose(S, n_components=k, random_state=0,
                                                                         max_iter=500))
                     for k in (1, RANK)}
    return S, reference


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_decompose_with_each_estimator(spectrogram, name):
    S, reference = spectrogram
    make, factor = ESTIMATORS[name]
    est = make()
    components, activations = librosa.decompose.decompose(S, transformer=est)
    check_is_fitted(est)
    assert est.components_.shape == (RANK, S.shape[0])
    assert components.shape == (S.shape[0], RANK) and activations.shape == (RANK, S.shape[1])
    assert np.all(components >= 0) and np.all(activations >= 0)
    assert np.all(np.isfinite(components)) and np.all(np.isfinite(activations))
    np.testing.assert_allclose(components, np.asarray(est.components_).T)
    error = _relative_error(S, components, activations)
    assert error < factor * reference[RANK], (error, reference)
    assert error < reference[1]  # three atoms explain more than the best single one
    # the transformer's own reconstruction of the activations is components @ activations
    np.testing.assert_allclose(np.asarray(est.inverse_transform(activations.T)).T, components @ activations,
                               rtol=1e-4, atol=1e-6 * S.max())


@pytest.mark.parametrize("name", ["nmf", "implicit"])
def test_decompose_without_refitting_keeps_the_atoms(spectrogram, name):
    """``fit=False`` calls ``transform``: the dictionary stays, the activations are re-estimated on it."""
    S, reference = spectrogram
    est = ESTIMATORS[name][0]()
    components, activations = librosa.decompose.decompose(S, transformer=est)
    again, act_again = librosa.decompose.decompose(S, transformer=est, fit=False)
    np.testing.assert_array_equal(again, components)
    assert _relative_error(S, again, act_again) < 1.05 * _relative_error(S, components, activations) + 1e-3


def test_decompose_sorts_atoms_by_peak_frequency(spectrogram):
    S, _ = spectrogram
    components, activations = librosa.decompose.decompose(S, transformer=NMF(RANK, max_iter=200, random_state=0),
                                                          sort=True)
    peaks = np.argmax(components, axis=0)
    assert list(peaks) == sorted(peaks)
    assert _relative_error(S, components, activations) < 1.05 * _relative_error(
        S, *librosa.decompose.decompose(S, transformer=NMF(RANK, max_iter=200, random_state=0)))
