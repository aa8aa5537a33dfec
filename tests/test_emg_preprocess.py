"""EMG preprocessing: zero-phase filters, adaptation to the sampling rate, envelopes, normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from deepnmf.emg.io import Recording, Segment, load_recording
from deepnmf.emg.preprocess import EnvelopeConfig, bandpass, envelope, notch, preprocess, time_normalise
from deepnmf.exceptions import DataError, ParameterError


def _tones(fs: float, freqs, n: int = 4000) -> np.ndarray:
    t = np.arange(n) / fs
    return np.stack([np.sin(2 * np.pi * f * t) for f in freqs], axis=1)


def test_bandpass_keeps_the_band_without_delay():
    fs = 1000.0
    low, mid, high = _tones(fs, [5.0, 100.0, 480.0]).T
    y, applied = bandpass((low + mid + high)[:, None], fs, (20.0, 450.0))
    assert applied == {"type": "bandpass", "edges": [20.0, 450.0]}
    core = slice(500, -500)  # away from the edges
    # zero phase: the in-band tone comes out sample by sample, the others are gone
    np.testing.assert_allclose(y[core, 0], mid[core], atol=0.03)


def test_bandpass_adapts_to_low_sampling_rates():
    x = np.random.default_rng(0).standard_normal((2000, 2))
    with pytest.warns(UserWarning, match="high-pass at 20 Hz only"):
        _, applied = bandpass(x, 500.0, (20.0, 450.0))
    assert applied["type"] == "highpass"
    with pytest.warns(UserWarning, match="band-pass 20-450 Hz skipped"):
        y, applied = bandpass(x, 30.0, (20.0, 450.0))
    assert applied["type"] == "skipped" and y is x


def test_notch_removes_mains_and_keeps_the_rest():
    fs = 1000.0
    mains, emg = _tones(fs, [50.0, 120.0]).T
    y, applied = notch((mains + emg)[:, None], fs, 50.0)
    assert applied
    core = slice(1000, -1000)
    np.testing.assert_allclose(y[core, 0], emg[core], atol=0.05)
    with pytest.warns(UserWarning, match="notch at 60 Hz skipped"):
        notch(mains[:, None], 100.0, 60.0)


def test_envelope_tracks_the_modulation_of_a_noise_carrier():
    fs = 1000.0
    t = np.arange(6000) / fs
    rng = np.random.default_rng(1)
    modulation = 1.0 + 0.8 * np.sin(2 * np.pi * 1.0 * t)
    x = (modulation * rng.standard_normal(t.size))[:, None]
    env, lowpassed = envelope(x, fs, 5.0)
    assert lowpassed and env.min() >= 0
    # the mean of |N(0, s^2)| is s * sqrt(2/pi)
    core = slice(500, -500)
    ratio = env[core, 0] / modulation[core]
    assert abs(np.median(ratio) - np.sqrt(2 / np.pi)) < 0.05
    assert np.corrcoef(env[core, 0], modulation[core])[0, 1] > 0.95
    # zero phase: the envelope's peaks sit on the modulation's peaks
    peak = np.argmax(env[1000:2000, 0]) + 1000
    assert abs(peak - 1250) < 30


def test_time_normalise_is_linear_interpolation_with_phase_shares():
    ramp = np.linspace(0.0, 1.0, 101)[:, None]
    out = time_normalise(ramp, 11)
    np.testing.assert_allclose(out[:, 0], np.linspace(0.0, 1.0, 11))
    # a stance phase of 70 samples and a swing of 30 each get half of the points
    x = np.r_[np.zeros(70), np.ones(31)][:, None]
    out = time_normalise(x, 20, phases=(70,))
    assert out.shape == (20, 1)
    np.testing.assert_allclose(out[:10, 0], 0.0)
    assert out[11:, 0].min() > 0.9


def _recording(x: np.ndarray, fs: float = 1000.0) -> Recording:
    n = x.shape[0]
    segs = [Segment(n // 8, n // 2, 1, 1), Segment(n // 2, 7 * n // 8, 1, 2)]
    return Recording(x, fs, [f"c{i}" for i in range(x.shape[1])], segs)


def test_constant_or_zero_channels_are_reported_or_dropped():
    x = np.random.default_rng(2).standard_normal((4000, 3))
    x[:, 1] = 0.0
    with pytest.raises(DataError, match=r"channel\(s\) c1 are constant or all zero"):
        preprocess(_recording(x))
    x[:, 1] = 2.5  # constant, not zero
    with pytest.raises(DataError, match="c1 are constant"):
        preprocess(_recording(x))
    with pytest.warns(UserWarning, match="dropping constant/all-zero channel"):
        env = preprocess(_recording(x), dead_channels="drop")
    assert env.channels == ["c0", "c2"]
    assert env.meta["preprocessing"]["dropped_channels"] == ["c1"]


def test_preprocess_records_parameters_and_normalises_amplitude():
    x = np.random.default_rng(3).standard_normal((8000, 4)) * np.array([1.0, 10.0, 0.1, 3.0])
    env = preprocess(_recording(x), notch=50.0, envelope_cutoff=8.0, envelope_fs=100.0)
    rec = env.meta["preprocessing"]
    assert rec["bandpass_applied"]["type"] == "bandpass" and rec["notch_applied"] is True
    assert rec["envelope_cutoff"] == 8.0 and rec["input_fs"] == 1000.0 and rec["output_fs"] == 100.0
    assert env.fs == 100.0 and env.n_samples == 800
    # segments follow the new time base
    assert [(s.start, s.stop) for s in env.segments] == [(100, 400), (400, 700)]
    labelled = np.concatenate([env.segment_data(s) for s in env.segments])
    np.testing.assert_allclose(labelled.max(axis=0), 1.0)
    assert env.data.min() >= 0
    # channel scales undo the gains: raw RMS ratios survive in the recorded scales
    scale = np.array(list(rec["channel_scale"].values()))
    np.testing.assert_allclose(scale / scale[0], [1.0, 10.0, 0.1, 3.0], rtol=0.15)


def test_bad_parameters_are_rejected():
    x = np.random.default_rng(4).standard_normal((1000, 2))
    with pytest.raises(ParameterError, match="band must be"):
        preprocess(_recording(x), band=(450.0, 20.0))
    with pytest.raises(ParameterError, match="amplitude must be one of"):
        EnvelopeConfig(amplitude="peak").validate()
    x[10, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        preprocess(_recording(x))


def test_gait_cycles_are_time_normalised(data_dir):
    rec = load_recording(data_dir / "emg" / "gait-13ch" / "RAW_DATA_ID0012_TW_01_emg.csv", format="gait")
    env = preprocess(rec, time_points=200)
    assert env.data.shape == (200 * len(rec.segments), 13)
    assert [(s.start, s.stop, s.phases) for s in env.segments[:2]] == [(0, 200, (100,)), (200, 400, (100,))]
    assert env.meta["time_normalised"] == 200
    assert env.meta["preprocessing"]["bandpass_applied"]["type"] == "bandpass"
    np.testing.assert_allclose(env.data.max(axis=0), 1.0)
    # walking is rhythmic: the average cycle correlates with each cycle for the ankle flexors
    cycles = env.data.reshape(len(rec.segments), 200, 13)
    mean = cycles.mean(axis=0)
    ta = rec.channels.index("TA")
    assert np.mean([np.corrcoef(c[:, ta], mean[:, ta])[0, 1] for c in cycles]) > 0.6
