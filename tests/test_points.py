"""TF point clouds and the CQT: coordinates, value scaling, peaks, unions, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnmf.audio import points as P
from deepnmf.audio.cqt import cqt, cqt_freqs
from deepnmf.audio.tf import stft_freqs
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn.implicit import unique_coordinates

SR = 16000


def tone(freqs_amps, seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps)


@pytest.mark.parametrize("n_fft", [256, 1000, 2000])
def test_stft_bins_normalise_to_k_over_half_n(n_fft):
    pts = P.from_stft(tone([(440, 0.5)]), SR, n_fft=n_fft)
    _, fn = pts.coords()
    bins = np.unique(fn)
    k = np.arange(n_fft // 2 + 1)
    np.testing.assert_allclose(bins, k / (n_fft / 2), rtol=0, atol=1e-12)
    assert bins[-1] == 1.0  # Nyquist -> 1, not N/2 / (N/2 + 1)


def test_stft_points_count_and_time_axis():
    x = tone([(440, 0.5)], seconds=0.5)
    pts = P.from_stft(x, SR, n_fft=512, hop=128)
    n_frames = 1 + x.size // 128
    assert len(pts) == n_frames * 257
    tn, _ = pts.coords()
    assert tn.min() == 0.0 and tn.max() <= 1.0 + 1e-9
    np.testing.assert_allclose(np.unique(pts.t), np.arange(n_frames) * 128 / SR)


@pytest.mark.parametrize("n_fft", [500, 2048])
def test_stft_values_are_amplitude_normalised(n_fft):
    # a bin-centred sinusoid of amplitude A gives A ** p at its bin, whatever the size
    f0 = 40 * SR / n_fft
    pts = P.from_stft(tone([(f0, 0.3)]), SR, n_fft=n_fft, power=0.5)
    inner = (pts.t > 0.2) & (pts.t < 0.8) & np.isclose(pts.f, f0)
    np.testing.assert_allclose(pts.value[inner], 0.3**0.5, rtol=1e-3)


def test_cqt_values_are_amplitude_normalised_and_peak_at_the_tone():
    f0 = float(cqt_freqs(fmin=32.70, n_bins=84)[57])  # a CQT centre frequency
    pts = P.from_cqt(tone([(f0, 0.4)], seconds=1.5), SR, power=1.0)
    mid = pts.subset((pts.t > 0.5) & (pts.t < 1.0))
    loudest = mid.f[np.argmax(mid.value)]
    assert loudest == pytest.approx(f0)
    assert mid.value.max() == pytest.approx(0.4, rel=0.05)


def test_cqt_matches_librosa_orientation():
    import librosa

    x = tone([(300, 0.5)], seconds=1.0)
    C = cqt(x, SR, hop=256, n_bins=60)
    ref = librosa.cqt(x, sr=SR, hop_length=256, fmin=32.70, n_bins=60)
    np.testing.assert_allclose(C, ref.T)


def test_peaks_recover_off_bin_frequencies():
    f1, f2 = 441.3, 1234.7  # not on the 2048-point grid (7.8 Hz bins)
    pts = P.from_peaks(tone([(f1, 0.5), (f2, 0.25)]), SR, n_fft=2048, max_peaks=2)
    inner = pts.subset((pts.t > 0.2) & (pts.t < 0.8))
    near1 = inner.f[np.abs(inner.f - f1) < 20]
    near2 = inner.f[np.abs(inner.f - f2) < 20]
    assert near1.size and near2.size
    assert np.abs(near1 - f1).max() < 1.0 and np.abs(near2 - f2).max() < 1.0
    amp1 = inner.value[np.abs(inner.f - f1) < 20] ** 2
    np.testing.assert_allclose(amp1, 0.5, rtol=0.05)  # log-parabola bias is < 4 % for Hann
    _, counts = np.unique(pts.t, return_counts=True)
    assert counts.max() <= 2


def test_hybrid_union_shares_frame_times_and_keeps_groups():
    x = tone([(440, 0.5)], seconds=0.5)
    hy = P.hybrid(x, SR, stfts=((128, 32), (1024, 256)))
    a, b = hy.select("stft-128/32"), hy.select("stft-1024/256")
    assert len(hy) == len(a) + len(b)
    assert hy.groups == ("stft-128/32", "stft-1024/256")
    tn, fn = hy.coords()
    t_u, _ = unique_coordinates(torch.as_tensor(tn))
    f_u, inv = unique_coordinates(torch.as_tensor(fn))
    # hop 256 frames are a subset of hop 32 frames; bins: 65 + 513 minus the 65 shared ones
    assert t_u.numel() == np.unique(a.t).size
    assert f_u.numel() == 513
    np.testing.assert_allclose(f_u[inv].numpy(), fn, atol=1e-9)


def test_union_rejects_different_signals():
    a = P.from_stft(tone([(440, 0.5)], seconds=0.5), SR, n_fft=256)
    b = P.from_stft(tone([(440, 0.5)], seconds=0.7), SR, n_fft=256)
    with pytest.raises(DataError, match="different signals"):
        P.union(a, b)
    c = P.from_stft(tone([(440, 0.5)], seconds=0.5, sr=8000), 8000, n_fft=256)
    with pytest.raises(DataError, match="different signals"):
        a | c


def test_spectrogram_points_roundtrip():
    rng = np.random.default_rng(0)
    V = rng.random((4, 3))
    pts = P.from_spectrogram(V, times=[0, 0.1, 0.2, 0.3], freqs=[0, 100, 200], duration=0.4, sr=400)
    np.testing.assert_array_equal(pts.value.reshape(4, 3), V)
    np.testing.assert_array_equal(pts.t.reshape(4, 3)[:, 0], [0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"value": [-1.0]}, DataError, "nonnegative"),
        ({"f": [9000.0]}, DataError, "Nyquist"),
        ({"t": [np.nan]}, DataError, "NaN"),
        ({"t": [], "f": [], "value": []}, DataError, "at least one point"),
        ({"t": [0.0, 1.0]}, DataError, "same length"),
    ],
)
def test_point_cloud_validation(kwargs, err, match):
    args = {"t": [0.0], "f": [100.0], "value": [1.0], "duration": 1.0, "sr": 16000}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        P.TFPoints(**args)


def test_front_end_parameter_errors():
    x = tone([(440, 0.5)], seconds=0.3)
    with pytest.raises(ParameterError, match="power must be a positive number"):
        P.from_stft(x, SR, n_fft=256, power=0)
    with pytest.raises(ParameterError, match="Nyquist"):
        cqt(x, SR, n_bins=120)
    with pytest.raises(ParameterError, match="multiple of"):
        cqt(x, SR, hop=100)
    with pytest.raises(DataError, match="1-D"):
        P.from_stft(np.zeros((2, 100)), SR, n_fft=64)
    with pytest.raises(DataError, match="silent"):
        P.from_peaks(np.zeros(4000), SR, n_fft=512)
    with pytest.raises(ParameterError, match="no group"):
        P.from_stft(x, SR, n_fft=256).select("cqt-256")


def test_normalisation_functions():
    np.testing.assert_allclose(P.normalise_freq(stft_freqs(1000, SR), SR), np.arange(501) / 500)
    np.testing.assert_allclose(P.normalise_time([0.0, 1.5, 3.0], 3.0), [0.0, 0.5, 1.0])
    with pytest.raises(ParameterError):
        P.normalise_time([0.0], 0.0)
