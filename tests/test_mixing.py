"""deepnmf.audio.mixing: SNR mixing, noise excerpts and constructed babble on real recordings."""
from __future__ import annotations

import numpy as np
import pytest

from deepnmf.audio import mixing
from deepnmf.audio.io import load_audio
from deepnmf.exceptions import DataError, ParameterError

SR = 16000


@pytest.fixture(scope="module")
def recordings(data_dir):
    timit = data_dir / "speech" / "timit-sample"
    speech, _ = load_audio(timit / "dr1-fvmh0" / "sa1.wav", sr=SR, dtype=np.float64)
    noise, _ = load_audio(data_dir / "noise" / "noisex-excerpts" / "factory2.wav", sr=SR, dtype=np.float64)
    voices = [load_audio(timit / spk / "sa2.wav", sr=SR, dtype=np.float64)[0] for spk in ("dr2-faem0", "dr2-marc0", "dr3-falk0")]
    return speech, noise, voices


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0])
def test_mix_at_snr_sets_the_snr(recordings, snr):
    speech, noise, _ = recordings
    mixture, s, n = mixing.mix_at_snr(speech, noise, snr, peak=None)
    naive = 10 * np.log10(np.sum(speech**2) / np.sum(n**2))
    assert naive == pytest.approx(snr, abs=1e-9)
    np.testing.assert_array_equal(s, speech)
    np.testing.assert_allclose(mixture, s + n)
    # the noise keeps its waveform, only its level changes
    ratio = n / noise[: speech.size]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_mix_peak_rescales_all_three_together(recordings):
    speech, noise, _ = recordings
    mixture, s, n = mixing.mix_at_snr(speech, noise * 50, -5.0, peak=0.1)
    assert np.max(np.abs(mixture)) == pytest.approx(0.1)
    assert mixing.snr_db(s, n) == pytest.approx(-5.0, abs=1e-9)
    np.testing.assert_allclose(mixture, s + n)


def test_mix_errors(recordings):
    speech, noise, _ = recordings
    with pytest.raises(DataError, match="use a longer noise excerpt"):
        mixing.mix_at_snr(speech, noise[:100], 0.0)
    with pytest.raises(DataError, match="noise is silent"):
        mixing.mix_at_snr(speech, np.zeros_like(speech), 0.0)
    with pytest.raises(DataError, match="speech is silent"):
        mixing.mix_at_snr(np.zeros(1000), noise, 0.0)
    with pytest.raises(DataError, match="speech is empty"):
        mixing.mix_at_snr(np.array([]), noise, 0.0)
    with pytest.raises(ParameterError, match="snr must be a finite"):
        mixing.mix_at_snr(speech, noise, float("nan"))
    with pytest.raises(DataError, match="1-D mono"):
        mixing.mix_at_snr(np.stack([speech, speech]), noise, 0.0)


def test_noise_excerpt_comes_from_the_region(recordings):
    _, noise, _ = recordings
    start, stop = 5 * SR, 8 * SR
    a = mixing.noise_excerpt(noise, SR, start=start, stop=stop, random_state=3)
    b = mixing.noise_excerpt(noise, SR, start=start, stop=stop, random_state=3)
    np.testing.assert_array_equal(a, b)
    region = noise[start:stop]
    offsets = [k for k in range(region.size - SR + 1) if region[k] == a[0] and np.array_equal(region[k : k + SR], a)]
    assert offsets, "the excerpt is not a contiguous piece of the region"
    with pytest.raises(DataError, match="fewer than the"):
        mixing.noise_excerpt(noise, 4 * SR, start=start, stop=stop)


def test_split_excerpt_disjoint_and_capped():
    train, test = mixing.split_excerpt(20 * SR, train_samples=9000 * 128)
    assert train == slice(0, 14 * SR) and test == slice(14 * SR, 20 * SR)  # short file: first 70 %
    train, test = mixing.split_excerpt(95 * SR, train_samples=60 * SR)
    assert train.stop == 60 * SR == test.start


def test_babble_sums_equal_level_talkers(recordings):
    _, _, voices = recordings
    length = 3 * SR
    b1 = mixing.babble(voices, length, random_state=0)
    b2 = mixing.babble(voices, length, random_state=0)
    b3 = mixing.babble(voices, length, random_state=1)
    assert b1.shape == (length,)
    assert np.sqrt(np.mean(b1**2)) == pytest.approx(1.0)
    np.testing.assert_array_equal(b1, b2)
    assert not np.allclose(b1, b3)
    # the babble is the normalised sum of each talker looped from its offset,
    # the offsets being drawn one per talker in order from the generator
    draw = np.random.default_rng(7)
    offsets = [int(draw.integers(0, v.size)) for v in voices]
    looped = [np.resize(np.roll(v, -k), length) for v, k in zip(voices, offsets)]
    naive = sum(v / np.sqrt(np.mean(v**2)) for v in looped)
    naive /= np.sqrt(np.mean(naive**2))
    np.testing.assert_allclose(mixing.babble(voices, length, random_state=np.random.default_rng(7)), naive, atol=1e-12)


def test_babble_errors(recordings):
    _, _, voices = recordings
    with pytest.raises(DataError, match="at least 2 talkers"):
        mixing.babble(voices[:1], SR)
    with pytest.raises(DataError, match=r"voices\[1\] is silent"):
        mixing.babble([voices[0], np.zeros(SR)], SR)


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_change_speed_scales_frequency_and_duration(factor):
    # a 440 Hz tone played `factor` times faster is a 440 * factor Hz tone, 1 / factor as long
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 440.0 * t)
    y = mixing.change_speed(x, factor)
    assert abs(y.size - SR / factor) <= 1
    mid = y[2000:-2000]  # away from the filter's edges
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    peak = np.argmax(spectrum) * SR / mid.size
    assert abs(peak - 440.0 * factor) < 2.0
    # the level of a tone is kept (anti-aliasing filter with unit pass-band gain)
    np.testing.assert_allclose(np.sqrt(np.mean(mid**2)), np.sqrt(0.5), rtol=0.02)


def test_change_speed_identity_and_errors():
    x = np.random.default_rng(0).standard_normal(1000)
    y = mixing.change_speed(x, 1.0)
    np.testing.assert_array_equal(y, x)
    assert y is not x
    for bad in (0.3, 2.5, float("nan")):
        with pytest.raises(ParameterError):
            mixing.change_speed(x, bad)
    with pytest.raises(DataError):
        mixing.change_speed(np.zeros((2, 10)), 1.1)
