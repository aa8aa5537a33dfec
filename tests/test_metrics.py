"""deepnmf.metrics: BSS Eval, PESQ, STOI, VAF on real speech and noise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from deepnmf import metrics
from deepnmf.audio.io import load_audio, save_audio
from deepnmf.exceptions import DataError, ParameterError

SR = 16000


@pytest.fixture(scope="module")
def speech_noise(data_dir):
    """2 s of real TIMIT speech and of real factory noise at 0 dB SNR, float64."""
    speech, _ = load_audio(data_dir / "speech" / "timit-sample" / "dr1-fvmh0" / "sa1.wav", sr=SR, dtype=np.float64)
    noise, _ = load_audio(data_dir / "noise" / "noisex-excerpts" / "factory2.wav", sr=SR, dtype=np.float64)
    speech = speech[: 2 * SR]
    noise = noise[: speech.size]
    noise *= np.linalg.norm(speech) / np.linalg.norm(noise)
    return speech, noise


# ---------------------------------------------------------------- BSS Eval
def test_bss_eval_backends_agree(speech_noise, rng):
    s, n = speech_noise
    refs = np.stack([s, n])
    ests = np.stack([s + 0.3 * n + 0.05 * np.tanh(3 * s), n + 0.2 * s + 0.01 * rng.standard_normal(s.size)])
    fast = metrics.bss_eval(refs, ests, backend="fast_bss_eval")
    slow = metrics.bss_eval(refs, ests, backend="mir_eval")
    for key in ("sdr", "sir", "sar"):
        assert fast[key].shape == (2,)
        np.testing.assert_allclose(fast[key], slow[key], atol=1e-3)


def test_bss_eval_matches_energy_ratio_for_white_sources(rng):
    # independent white sources: the 512-tap projections barely mix them, so
    # SIR is the plain energy ratio of the target to the leaked interferer
    s = rng.standard_normal(16000)
    n = rng.standard_normal(16000)
    res = metrics.bss_eval(np.stack([s, n]), np.stack([s + 0.5 * n, n + 0.1 * s]))
    expected = [10 * np.log10(np.sum(s**2) / np.sum((0.5 * n) ** 2)), 10 * np.log10(np.sum(n**2) / np.sum((0.1 * s) ** 2))]
    np.testing.assert_allclose(res["sir"], expected, atol=0.5)
    np.testing.assert_allclose(res["sdr"], expected, atol=0.5)
    assert np.all(res["sar"] > 30)


def test_bss_eval_permutation(speech_noise):
    s, n = speech_noise
    refs = np.stack([s, n])
    ests = np.stack([n + 0.1 * s, s + 0.2 * n])  # swapped
    res = metrics.bss_eval(refs, ests, compute_permutation=True)
    assert res["perm"].tolist() == [1, 0]
    direct = metrics.bss_eval(refs, ests[::-1])
    np.testing.assert_allclose(res["sdr"], direct["sdr"], atol=1e-6)


def test_bss_eval_accepts_paths(speech_noise, tmp_path):
    s, n = speech_noise
    scale = 0.9 / np.max(np.abs(s + n))
    paths = {}
    for name, sig in {"s": s * scale, "n": n * scale, "es": (s + 0.3 * n) * scale, "en": (n + 0.3 * s) * scale}.items():
        paths[name] = save_audio(tmp_path / f"{name}.wav", sig, SR, subtype="FLOAT")
    from_files = metrics.bss_eval([paths["s"], paths["n"]], [paths["es"], paths["en"]])
    from_arrays = metrics.bss_eval(np.stack([s, n]), np.stack([s + 0.3 * n, n + 0.3 * s]))
    np.testing.assert_allclose(from_files["sdr"], from_arrays["sdr"], atol=1e-3)


def test_bss_eval_bad_input(speech_noise):
    s, n = speech_noise
    with pytest.raises(DataError, match=r"reference source\(s\) \[1\] are silent"):
        metrics.bss_eval(np.stack([s, np.zeros_like(s)]), np.stack([s, n]))
    with pytest.raises(DataError, match="same shape"):
        metrics.bss_eval(np.stack([s, n]), np.stack([s, n])[:, :-5])
    with pytest.raises(DataError, match="at least 512"):
        metrics.bss_eval(s[:100], s[:100])
    with pytest.raises(DataError, match="NaN"):
        metrics.bss_eval(s, np.full_like(s, np.nan))
    with pytest.raises(ParameterError, match="backend must be"):
        metrics.bss_eval(s, s, backend="museval")
    with pytest.raises(DataError, match="does not exist"):
        metrics.bss_eval(["/nonexistent/ref.wav"], ["/nonexistent/est.wav"])


# --------------------------------------------------------------- PESQ, STOI
@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_pesq_orders_quality(speech_noise, mode):
    s, n = speech_noise
    clean = metrics.pesq(s, s, SR, mode=mode)
    light = metrics.pesq(s, s + 0.1 * n, SR, mode=mode)
    heavy = metrics.pesq(s, s + n, SR, mode=mode)
    assert clean > 4.0
    assert clean > light > heavy


def test_pesq_narrow_band_at_8k(speech_noise):
    from deepnmf.audio.io import resample

    s, n = (resample(v, SR, 8000) for v in speech_noise)
    assert metrics.pesq(s, s + 0.1 * n, 8000, mode="nb") > metrics.pesq(s, s + n, 8000, mode="nb")


def test_pesq_missing_values_are_nan_with_warning(speech_noise):
    s, n = speech_noise
    with pytest.warns(metrics.MetricWarning, match="wb mode needs 16 kHz, got 44100 Hz"):
        assert math.isnan(metrics.pesq(s, s + n, 44100, mode="wb"))
    with pytest.warns(metrics.MetricWarning, match="wb mode needs 16 kHz, got 8000 Hz"):
        assert math.isnan(metrics.pesq(s, s, 8000, mode="wb"))
    with pytest.warns(metrics.MetricWarning, match="BufferTooShortError"):
        assert math.isnan(metrics.pesq(s[:2000], s[:2000] + n[:2000], SR))
    with pytest.warns(metrics.MetricWarning, match="estimate is silent"):
        assert math.isnan(metrics.pesq(s, np.zeros_like(s), SR))
    with pytest.warns(metrics.MetricWarning, match="reference is silent"):
        assert math.isnan(metrics.pesq(np.zeros_like(s), s, SR, mode="nb"))


def test_pesq_stoi_accept_paths(speech_noise, tmp_path):
    s, n = speech_noise
    scale = 0.9 / np.max(np.abs(s + n))
    ref = save_audio(tmp_path / "ref.wav", s * scale, SR, subtype="FLOAT")
    est = save_audio(tmp_path / "est.wav", (s + 0.3 * n) * scale, SR, subtype="FLOAT")
    assert metrics.pesq(ref, est) == pytest.approx(metrics.pesq(s * scale, (s + 0.3 * n) * scale, SR), abs=1e-3)
    assert metrics.stoi(ref, est) == pytest.approx(metrics.stoi(s, s + 0.3 * n, SR), abs=1e-4)


@pytest.mark.parametrize("extended", [False, True])
def test_stoi_orders_intelligibility(speech_noise, extended):
    s, n = speech_noise
    scores = [metrics.stoi(s, s + g * n, SR, extended=extended) for g in (0.0, 0.3, 1.0, 3.0)]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4


def test_stoi_too_short_is_missing(speech_noise):
    s, n = speech_noise
    with pytest.warns(metrics.MetricWarning, match="STOI is missing"):
        assert math.isnan(metrics.stoi(s[:2000], s[:2000] + n[:2000], SR))


# --------------------------------------------------------------------- VAF
def test_vaf_matches_naive_formula(rng):
    X = rng.random((50, 6))
    X_hat = X + 0.1 * rng.standard_normal((50, 6))
    naive = 1 - ((X - X_hat) ** 2).sum() / (X**2).sum()
    assert metrics.vaf(X, X_hat) == pytest.approx(naive)
    per = metrics.vaf(X, X_hat, per_feature=True)
    assert per.shape == (6,)
    np.testing.assert_allclose(per, [1 - ((X[:, j] - X_hat[:, j]) ** 2).sum() / (X[:, j] ** 2).sum() for j in range(6)])
    assert metrics.vaf(X, X) == 1.0
    with pytest.raises(DataError, match="same shape"):
        metrics.vaf(X, X[:, :5])


def test_mean_ignoring_missing():
    assert metrics.mean_ignoring_missing([1.0, float("nan"), 3.0]) == 2.0
    assert math.isnan(metrics.mean_ignoring_missing([float("nan")]))


def test_enhancement_scores_of_the_unprocessed_mixture_give_its_snr():
    from deepnmf.metrics import enhancement_scores

    rng = np.random.default_rng(4)
    t = np.arange(16000) / 16000
    clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    noise = rng.standard_normal(t.size)
    noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2)) / 10 ** (5 / 20)  # 5 dB SNR
    got = enhancement_scores(clean, noise, clean + noise, 16000)
    assert set(got) == {"sdr", "sir", "sar", "pesq", "pesq_wb", "stoi"}
    assert got["sdr"] == pytest.approx(5.0, abs=0.3)
    better = enhancement_scores(clean, noise, clean + 0.1 * noise, 16000)
    assert better["sdr"] > got["sdr"] + 10 and better["stoi"] > got["stoi"]
