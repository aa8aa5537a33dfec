"""Mixing at an SNR, training matrices from files, and the quality metrics on generated audio (no recordings).

References are independent of the code under test: the SNR formula written
out, ``librosa.stft`` for the frames, ``mir_eval`` for BSS Eval, and the
orderings any quality or intelligibility measure must respect.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import soundfile as sf

from deepnmf import metrics
from deepnmf.audio import mixing
from deepnmf.audio.frames import load_matrix, load_signals, read_npy
from deepnmf.exceptions import DataError, ParameterError

SR = 16000


@pytest.fixture(scope="module")
def speech_noise(synthetic_audio):
    """1.5 s of generated speech and of hum noise, float64; and two more talkers for babble."""
    speech = synthetic_audio["speech"]["test/spk2"][0]
    noise = synthetic_audio["noises"]["hum"]
    voices = [np.concatenate(synthetic_audio["speech"][k]) for k in ("train/spk0", "train/spk1", "test/spk3")]
    return speech, noise, voices


def _naive_snr(s, n):
    return 10 * math.log10(sum(v * v for v in s) / sum(v * v for v in n))


# ------------------------------------------------------------------ mixing
@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0])
def test_mix_at_snr_sets_the_snr(speech_noise, snr):
    speech, noise, _ = speech_noise
    mixture, s, n = mixing.mix_at_snr(speech, noise, snr, peak=None)
    assert _naive_snr(s, n) == pytest.approx(snr, abs=1e-9)
    assert mixing.snr_db(s, n) == pytest.approx(_naive_snr(s, n), abs=1e-9)
    np.testing.assert_array_equal(s, speech)
    np.testing.assert_array_equal(mixture, s + n)
    ratio = n / noise[: speech.size]  # the noise keeps its waveform; only its level changes
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    np.testing.assert_allclose(mixing.scale_to_snr(speech, noise[: speech.size], snr), n)


def test_peak_rescales_all_three_together(speech_noise):
    speech, noise, _ = speech_noise
    mixture, s, n = mixing.mix_at_snr(speech, 50 * noise, -5.0, peak=0.1)
    assert np.max(np.abs(mixture)) == pytest.approx(0.1)
    assert _naive_snr(s, n) == pytest.approx(-5.0, abs=1e-9)
    np.testing.assert_allclose(mixture, s + n)
    np.testing.assert_allclose(s / speech, s[0] / speech[0])


def test_mixing_errors(speech_noise):
    speech, noise, _ = speech_noise
    cases = [
        (DataError, "use a longer noise excerpt", lambda: mixing.mix_at_snr(speech, noise[:100], 0.0)),
        (DataError, "noise is silent", lambda: mixing.mix_at_snr(speech, np.zeros_like(speech), 0.0)),
        (DataError, "speech is silent", lambda: mixing.mix_at_snr(np.zeros(1000), noise, 0.0)),
        (DataError, "speech is empty", lambda: mixing.mix_at_snr(np.array([]), noise, 0.0)),
        (DataError, "NaN or infinite", lambda: mixing.mix_at_snr(np.full(10, np.nan), noise, 0.0)),
        (ParameterError, "snr must be a finite", lambda: mixing.mix_at_snr(speech, noise, float("inf"))),
        (DataError, "1-D mono", lambda: mixing.mix_at_snr(np.stack([speech, speech]), noise, 0.0)),
        (DataError, "same length", lambda: mixing.scale_to_snr(speech, noise, 0.0)),
        (DataError, "noise is silent", lambda: mixing.snr_db(speech, np.zeros(3))),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


def test_noise_excerpt_is_a_piece_of_the_region(speech_noise):
    _, noise, _ = speech_noise
    start, stop = 2 * SR, 5 * SR
    a = mixing.noise_excerpt(noise, SR, start=start, stop=stop, random_state=3)
    np.testing.assert_array_equal(a, mixing.noise_excerpt(noise, SR, start=start, stop=stop, random_state=3))
    assert not np.array_equal(a, mixing.noise_excerpt(noise, SR, start=start, stop=stop, random_state=4))
    region = noise[start:stop]
    offsets = [k for k in range(region.size - SR + 1) if region[k] == a[0] and np.array_equal(region[k:k + SR], a)]
    assert len(offsets) == 1
    # a Generator is used as given: two draws from one generator differ, a re-seeded one repeats them
    g = np.random.default_rng(5)
    first, second = (mixing.noise_excerpt(noise, 100, random_state=g) for _ in range(2))
    again = mixing.noise_excerpt(noise, 100, random_state=np.random.default_rng(5))
    assert not np.array_equal(first, second) and np.array_equal(first, again)
    with pytest.raises(DataError, match="fewer than the"):
        mixing.noise_excerpt(noise, 4 * SR, start=start, stop=stop)
    with pytest.raises(ParameterError, match="length must be >= 1"):
        mixing.noise_excerpt(noise, 0)


def test_split_excerpt_is_disjoint_and_capped():
    train, test = mixing.split_excerpt(20 * SR, train_samples=9000 * 128)
    assert train == slice(0, 14 * SR) and test == slice(14 * SR, 20 * SR)  # a short file: its first 70 %
    train, test = mixing.split_excerpt(95 * SR, train_samples=60 * SR)
    assert train.stop == 60 * SR == test.start and test.stop == 95 * SR
    assert mixing.split_excerpt(10, train_samples=0) == (slice(0, 1), slice(1, 10))
    with pytest.raises(DataError, match="cannot be split"):
        mixing.split_excerpt(1, train_samples=1)
    with pytest.raises(ParameterError, match="max_train_fraction"):
        mixing.split_excerpt(100, train_samples=10, max_train_fraction=1.0)


def test_babble_is_the_normalised_sum_of_looped_talkers(speech_noise):
    _, _, voices = speech_noise
    length = 7 * SR  # longer than each talker: every voice is looped
    b = mixing.babble(voices, length, random_state=np.random.default_rng(7))
    draw = np.random.default_rng(7)
    offsets = [int(draw.integers(0, v.size)) for v in voices]
    looped = [np.resize(np.roll(v, -k), length) for v, k in zip(voices, offsets)]
    naive = sum(v / np.sqrt(np.mean(v**2)) for v in looped)
    np.testing.assert_allclose(b, naive / np.sqrt(np.mean(naive**2)), atol=1e-12)
    assert np.sqrt(np.mean(b**2)) == pytest.approx(1.0)
    assert not np.allclose(b, mixing.babble(voices, length, random_state=1))
    with pytest.raises(DataError, match="at least 2 talkers"):
        mixing.babble(voices[:1], SR)
    with pytest.raises(DataError, match=r"voices\[1\] is silent"):
        mixing.babble([voices[0], np.zeros(SR)], SR)
    with pytest.raises(ParameterError, match="length must be >= 1"):
        mixing.babble(voices, 0)


# ------------------------------------------------------------------ frames
@pytest.mark.parametrize("power", [1.0, 0.5])
def test_audio_frames_match_librosa(synthetic_audio, power):
    import librosa

    folder = synthetic_audio["train"][0]
    X, summary = load_matrix([folder], sr=SR, n_fft=256, hop=64, power=power)
    files = sorted(folder.glob("*.wav"))
    want = np.concatenate([np.abs(librosa.stft(sf.read(f)[0], n_fft=256, hop_length=64, window="hann", center=True,
                                                    pad_mode="reflect")).T ** power for f in files])
    assert X.dtype == np.float32 and X.shape == want.shape
    np.testing.assert_allclose(X, want, rtol=1e-4, atol=1e-4 * want.max())
    assert summary == {"kind": "audio", "files": [str(f) for f in files], "n_files": 2, "seconds": 3.0, "sr": SR,
                       "n_fft": 256, "hop": 64, "power": power}


def test_signals_are_resampled_to_the_working_rate(synthetic_audio, tmp_path):
    x = synthetic_audio["speech"]["train/spk0"][0]
    path = tmp_path / "slow.wav"
    sf.write(path, x[::2], SR // 2, subtype="FLOAT")  # 8 kHz file
    (y,), summary = load_signals([path], sr=SR)
    assert y.size == x.size and summary["seconds"] == pytest.approx(x.size / SR)


def test_npy_matrices_are_stacked_by_rows(tmp_path, rng):
    a, b = rng.random((5, 4)), rng.random((3, 4))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    X, summary = load_matrix([tmp_path / "a.npy", tmp_path / "b.npy"], sr=SR, n_fft=256, hop=64, power=1.0)
    np.testing.assert_array_equal(X, np.vstack([a, b]))
    assert summary == {"kind": "matrix", "files": [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]}


def test_frames_bad_input(synthetic_audio, tmp_path, rng):
    np.save(tmp_path / "a.npy", rng.random((5, 4)))
    np.save(tmp_path / "wide.npy", rng.random((5, 6)))
    np.save(tmp_path / "cube.npy", rng.random((2, 2, 2)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "empty").mkdir()
    sf.write(tmp_path / "silent.wav", np.zeros(SR), SR)
    opts = dict(sr=SR, n_fft=256, hop=64, power=1.0)
    cases = {
        "not both": [tmp_path / "a.npy", synthetic_audio["train"][0]],
        "does not exist": [tmp_path / "missing.npy"],
        "3-D array": [tmp_path / "cube.npy"],
        "has 6 features but the first matrix has 4": [tmp_path / "a.npy", tmp_path / "wide.npy"],
        "as a numeric .npy array": [tmp_path / "objects.npy"],
        "no audio files": [tmp_path / "empty"],
        "is silent": [tmp_path / "silent.wav"],
    }
    for message, inputs in cases.items():
        with pytest.raises(DataError, match=message):
            load_matrix(inputs, **opts)
    with pytest.raises(DataError, match="numeric .npy"):
        read_npy(tmp_path / "objects.npy")


# ----------------------------------------------------------------- metrics
def test_bss_eval_backends_agree_and_match_mir_eval(speech_noise, rng):
    import mir_eval

    s, noise, _ = speech_noise
    n = noise[: s.size] * np.linalg.norm(s) / np.linalg.norm(noise[: s.size])
    refs = np.stack([s, n])
    ests = np.stack([s + 0.3 * n + 0.05 * np.tanh(3 * s), n + 0.2 * s + 0.01 * rng.standard_normal(s.size)])
    fast = metrics.bss_eval(refs, ests, backend="fast_bss_eval")
    ours = metrics.bss_eval(refs, ests, backend="mir_eval")
    with warnings.catch_warnings():  # bss_eval_sources is marked deprecated in mir_eval 0.8
        warnings.simplefilter("ignore", FutureWarning)
        ref_sdr, ref_sir, ref_sar, _ = mir_eval.separation.bss_eval_sources(refs, ests, compute_permutation=False)
    for key, want in (("sdr", ref_sdr), ("sir", ref_sir), ("sar", ref_sar)):
        np.testing.assert_allclose(ours[key], want, rtol=1e-10)
        np.testing.assert_allclose(fast[key], want, atol=1e-3)
    assert metrics.bss_eval(refs, ests)["sdr"] == pytest.approx(fast["sdr"])  # auto picks fast_bss_eval


def test_bss_eval_permutation_and_paths(speech_noise, tmp_path):
    s, noise, _ = speech_noise
    n = noise[: s.size] * np.linalg.norm(s) / np.linalg.norm(noise[: s.size])
    refs, ests = np.stack([s, n]), np.stack([n + 0.1 * s, s + 0.2 * n])  # estimates swapped
    res = metrics.bss_eval(refs, ests, compute_permutation=True)
    assert res["perm"].tolist() == [1, 0]
    np.testing.assert_allclose(res["sdr"], metrics.bss_eval(refs, ests[::-1])["sdr"], atol=1e-6)
    scale = 0.9 / np.max(np.abs(ests))
    paths = [sf.write(tmp_path / f"{k}.wav", v * scale, SR, subtype="FLOAT") or tmp_path / f"{k}.wav"
             for k, v in (("s", s), ("n", n), ("es", ests[1]), ("en", ests[0]))]
    from_files = metrics.bss_eval(paths[:2], paths[2:])
    np.testing.assert_allclose(from_files["sdr"], metrics.bss_eval(refs, ests[::-1])["sdr"], atol=1e-3)


def test_bss_eval_bad_input(speech_noise):
    s, noise, _ = speech_noise
    n = noise[: s.size]
    cases = {
        r"reference source\(s\) \[1\] are silent": (np.stack([s, 0 * s]), np.stack([s, n])),
        r"estimate source\(s\) \[0\] are silent": (np.stack([s, n]), np.stack([0 * s, n])),
        "same shape": (np.stack([s, n]), np.stack([s, n])[:, :-5]),
        "at least 512": (s[:100], s[:100]),
        "NaN": (s, np.full_like(s, np.nan)),
        "one common length": ([s, s[:-1]], [s, s]),
        "holds no signals": ([], []),
        "real-valued numeric": (s.astype(complex), s),
        r"\(n_sources, n_samples\)": (s[None, None], s[None, None]),
        "does not exist": (["/nonexistent/ref.wav"], ["/nonexistent/est.wav"]),
    }
    for message, (refs, ests) in cases.items():
        with pytest.raises(DataError, match=message):
            metrics.bss_eval(refs, ests)
    with pytest.raises(ParameterError, match="backend must be"):
        metrics.bss_eval(s, s, backend="museval")


@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_pesq_orders_quality(speech_noise, mode):
    s, noise, _ = speech_noise
    n = noise[: s.size] * np.linalg.norm(s) / np.linalg.norm(noise[: s.size])
    scores = [metrics.pesq(s, s + g * n, SR, mode=mode) for g in (0.0, 0.1, 1.0)]
    assert scores[0] > 4.0 and scores == sorted(scores, reverse=True) and len(set(scores)) == 3


def test_pesq_narrow_band_at_8k_and_paths(speech_noise, tmp_path):
    from deepnmf.audio.io import resample, save_audio

    s, noise, _ = speech_noise
    n = noise[: s.size] * np.linalg.norm(s) / np.linalg.norm(noise[: s.size])
    s8, n8 = resample(s, SR, 8000), resample(n, SR, 8000)
    assert metrics.pesq(s8, s8 + 0.1 * n8, 8000, mode="nb") > metrics.pesq(s8, s8 + n8, 8000, mode="nb")
    scale = 0.9 / np.max(np.abs(s + n))
    ref = save_audio(tmp_path / "ref.wav", s * scale, SR, subtype="FLOAT")
    est = save_audio(tmp_path / "est.wav", (s + 0.3 * n) * scale, SR, subtype="FLOAT")
    assert metrics.pesq(ref, est) == pytest.approx(metrics.pesq(s * scale, (s + 0.3 * n) * scale, SR), abs=1e-3)
    assert metrics.stoi(ref, est) == pytest.approx(metrics.stoi(s, s + 0.3 * n, SR), abs=1e-4)


def test_pesq_missing_values_are_nan_with_a_warning(speech_noise):
    s, noise, _ = speech_noise
    n = noise[: s.size]
    cases = [("wb mode needs 16 kHz, got 44100 Hz", lambda: metrics.pesq(s, s + n, 44100)),
             ("nb mode needs 8 kHz or 16 kHz, got 22050 Hz", lambda: metrics.pesq(s, s + n, 22050, mode="nb")),
             ("BufferTooShortError", lambda: metrics.pesq(s[:2000], s[:2000] + n[:2000], SR)),
             ("estimate is silent", lambda: metrics.pesq(s, np.zeros_like(s), SR)),
             ("reference is silent", lambda: metrics.pesq(np.zeros_like(s), s, SR, mode="nb")),
             ("STOI is missing", lambda: metrics.stoi(s[:2000], s[:2000] + n[:2000], SR)),
             ("ESTOI is missing", lambda: metrics.stoi(s[:2000], s[:2000] + n[:2000], SR, extended=True))]
    for message, call in cases:
        with pytest.warns(metrics.MetricWarning, match=message):
            assert math.isnan(call())


@pytest.mark.parametrize("extended", [False, True])
def test_stoi_orders_intelligibility(speech_noise, extended):
    s, noise, _ = speech_noise
    n = noise[: s.size] * np.linalg.norm(s) / np.linalg.norm(noise[: s.size])
    scores = [metrics.stoi(s, s + g * n, SR, extended=extended) for g in (0.0, 0.3, 1.0, 3.0)]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4


def test_pair_errors(speech_noise):
    import torch

    s, _, _ = speech_noise
    with pytest.raises(DataError, match="same length"):
        metrics.stoi(s, s[:-1], SR)
    with pytest.raises(ParameterError, match="sr .* is required"):
        metrics.pesq(s, s)
    with pytest.raises(ParameterError, match="mode must be"):
        metrics.pesq(s, s, SR, mode="fb")
    with pytest.raises(DataError, match="1-D mono"):
        metrics.stoi(np.stack([s, s]), np.stack([s, s]), SR)
    with pytest.raises(DataError, match="empty"):
        metrics.pesq(np.array([]), np.array([]), SR)
    with pytest.raises(DataError, match="real-valued numeric"):
        metrics.stoi(np.array(["a", "b"]), s[:2], SR)
    # torch tensors are read like arrays
    assert metrics.stoi(torch.from_numpy(s), torch.from_numpy(s), SR) == pytest.approx(metrics.stoi(s, s, SR))


def test_vaf_matches_the_naive_formula(rng):
    X = rng.random((40, 5))
    X_hat = X + 0.1 * rng.standard_normal(X.shape)
    assert metrics.vaf(X, X_hat) == pytest.approx(1 - ((X - X_hat) ** 2).sum() / (X**2).sum())
    np.testing.assert_allclose(metrics.vaf(X, X_hat, per_feature=True),
                               [1 - ((X[:, j] - X_hat[:, j]) ** 2).sum() / (X[:, j] ** 2).sum() for j in range(5)])
    with pytest.raises(DataError, match="no energy"):
        metrics.vaf(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(DataError, match="same shape"):
        metrics.vaf(X, X[:, :4])
