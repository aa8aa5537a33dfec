"""Audio I/O, resampling and STFT against independent references (scipy, librosa)."""
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from deepnmf.audio.io import check_not_silent, list_audio_files, load_audio, resample, save_audio
from deepnmf.audio.tf import istft, magnitude, stft, stft_freqs
from deepnmf.exceptions import DataError, ParameterError


def test_resample_keeps_a_tone_and_matches_scipy():
    sr, f0 = 22050, 440.0
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * f0 * t)
    y = resample(x, sr, 16000)
    assert y.shape[0] == 16000
    ref = scipy.signal.resample_poly(x, 320, 441)
    np.testing.assert_allclose(y[500:-500], ref[500:-500], atol=2e-3)


def test_load_mixes_down_and_resamples(tmp_path):
    sr = 22050
    t = np.arange(sr // 2) / sr
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)], axis=1) * 0.5
    sf.write(tmp_path / "s.flac", stereo, sr)
    x, out_sr = load_audio(tmp_path / "s.flac", sr=16000)
    assert out_sr == 16000 and x.ndim == 1 and x.shape[0] == 8000
    assert np.abs(x).max() == pytest.approx(0.25, rel=0.02)  # mean of the two channels


def test_save_load_round_trip_and_errors(tmp_path):
    x = 0.5 * np.sin(np.linspace(0, 100, 4000))
    save_audio(tmp_path / "a.wav", x, 16000)
    y, sr = load_audio(tmp_path / "a.wav", sr=None)
    assert sr == 16000
    np.testing.assert_allclose(y, x, atol=1e-4)
    with pytest.raises(DataError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="cannot read"):
        load_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(DataError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(DataError, match="silent"):
        check_not_silent(np.zeros(100))
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        list_audio_files(tmp_path / "sub")
    with pytest.raises(DataError, match="neither"):
        list_audio_files(tmp_path / "nowhere")
    assert list_audio_files(tmp_path) == sorted(tmp_path / n for n in ("a.wav", "empty.wav", "junk.wav"))


def test_real_recording_loads(data_dir):
    x, sr = load_audio(data_dir / "noise" / "noisex-excerpts" / "factory2.wav", sr=16000)
    assert sr == 16000 and x.shape[0] == pytest.approx(20 * 16000, rel=0.01)
    check_not_silent(x)


@pytest.mark.parametrize("window", ["hann", "sqrt-hann", "hamming"])
@pytest.mark.parametrize("n_fft, hop", [(512, 128), (2000, 1000), (1500, 750)])
def test_stft_inverts(window, n_fft, hop, rng):
    x = torch.from_numpy(rng.standard_normal(16000))
    S = stft(x, n_fft=n_fft, hop=hop, window=window)
    assert S.shape == (1 + 16000 // hop, n_fft // 2 + 1)
    y = istft(S, n_fft=n_fft, hop=hop, window=window, length=16000)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-9)


def test_stft_matches_librosa(rng):
    import librosa

    x = rng.standard_normal(8000).astype(np.float32)
    ref = np.abs(librosa.stft(x, n_fft=512, hop_length=128, window="hann", center=True, pad_mode="reflect")).T
    np.testing.assert_allclose(magnitude(stft(x, n_fft=512, hop=128)).numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stft_freqs(512, 16000)[[0, 1, -1]], [0.0, 31.25, 8000.0])


def test_stft_errors():
    with pytest.raises(DataError, match="1-D"):
        stft(np.zeros((2, 100)))
    with pytest.raises(DataError, match="empty"):
        stft(np.zeros(0))
    with pytest.raises(ParameterError, match="window"):
        stft(np.zeros(1000), window="kaiser")
    with pytest.raises(ParameterError, match="power"):
        magnitude(stft(np.ones(1000)), power=0)
