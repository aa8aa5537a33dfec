"""The demo of the three systems and its report; the synthetic generators; component matching."""
import io
import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.cli.main import app
from deepnmf.datasets.synthetic import NOISE_KINDS, harmonic_notes, noise_signal, planted_nmf, speech_like
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.matching import match_components


def test_harmonic_notes_ground_truth():
    sig = harmonic_notes(3, duration=2.0, seed=1)
    assert sig.audio.shape == (32000,) and np.abs(sig.audio).max() <= 0.9 + 1e-6
    np.testing.assert_allclose(sig.sources.sum(0), sig.audio, atol=0.01)  # only the small noise differs
    spectrum = np.abs(np.fft.rfft(sig.sources[0]))
    peak_hz = np.argmax(spectrum) * sig.sr / sig.audio.size
    assert peak_hz == pytest.approx(sig.pitches[0], rel=0.02)  # the fundamental is the strongest partial


def test_planted_nmf_is_exactly_low_rank_without_noise():
    X, Z, W = planted_nmf(50, 20, 4, noise=0.0)
    np.testing.assert_allclose(X, Z @ W)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0)
    assert np.linalg.matrix_rank(X) == 4


def test_match_components_equals_brute_force(rng):
    A = rng.random((4, 10))
    B = rng.random((6, 10))
    order, cos = match_components(A, B)
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    best = max(itertools.permutations(range(6), 4), key=lambda p: sum(An[i] @ Bn[j] for i, j in enumerate(p)))
    assert list(order) == list(best)
    np.testing.assert_allclose(cos, [An[i] @ Bn[j] for i, j in enumerate(best)])
    with pytest.raises(DataError, match="cannot cover"):
        match_components(B, A)


@pytest.mark.slow
def test_demo_command_runs_the_three_systems_and_writes_the_report(tmp_path):
    """`deepnmf demo --quick` on generated data: every job's tables, figures and audio reach the page."""
    from test_report import decode, parse

    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "-o", str(out), "--quick", "--data", "synthetic", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == "synthetic" and summary["jobs"] == ["enhancement", "separation", "synergies"]
    assert summary["environment"]["packages"]["torch"] and summary["environment"]["git_commit"]
    page = parse(out / "report.html")
    assert page.external == []
    html = (out / "report.html").read_text()
    for title in ("Speech enhancement", "Source separation across STFT sizes", "Muscle synergies"):
        assert f"<h2>{title}</h2>" in html
    sections = {job: json.loads((out / job / "section.json").read_text()) for job in summary["jobs"]}
    n_images = sum(len(s.get("figures", [])) for s in sections.values())
    n_audio = sum(len(s.get("audio", [])) for s in sections.values())
    assert len(page.images) == n_images >= 8 and len(page.audio) == n_audio >= 10
    import soundfile as sf

    for uri in page.audio:
        x, sr = sf.read(io.BytesIO(decode(uri, "audio/wav")))
        assert sr == 16000 and x.size > 0 and np.all(np.isfinite(x))
    enh = sections["enhancement"]["tables"][0]
    assert [row[0] for row in enh["rows"]] == ["noisy", "NMF + MU", "VAE-NMF + MU", "NMF + DNN", "VAE-NMF + DNN"]
    assert enh["columns"] == ["method", "SDR", "SIR", "SAR", "PESQ", "STOI"]
    assert enh["rows"][0][3] is None  # the noisy input's SAR: BSS Eval's ceiling, not a measurement
    sep = sections["separation"]["tables"][0]
    assert [row[0] for row in sep["rows"]] == ["iN-NMF (trained at 512)", "NMF (refitted)"]
    syn = sections["synergies"]["tables"][0]
    assert [row[0] for row in syn["rows"]] == ["nmf", "vae-nmf"] and all(0 < row[1] <= 1 for row in syn["rows"])
    assert (out / "report.md").read_text().count("## ") >= 4
    import shutil

    if any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):  # the page in a browser
        from test_report import chromium_check

        seen = chromium_check(out / "report.html", tmp_path / "demo.png")
        assert seen["images"] == [True] * n_images and len(seen["audio"]) == n_audio
        assert all(d > 0.5 for d in seen["audio"]) and seen["tables"] >= 5


def test_demo_enhancement_beats_the_noisy_input(tmp_path):
    """Full settings, enhancement only, generated data: every method raises SDR over the noisy mixture."""
    from deepnmf.pipelines.demo import CONFIGS, enhancement_job
    from deepnmf.pipelines._demo_data import synthetic_enhancement

    data = synthetic_enhancement(0, quick=True)
    cfg = {**CONFIGS[True]["enhancement"], "speech_rank": 16, "noise_rank": 8, "nmf_iter": 100}
    section = enhancement_job(tmp_path, data, seed=0, cfg=cfg)
    sdr = {row[0]: row[1] for row in section["tables"][0]["rows"]}
    assert sdr["NMF + MU"] > sdr["noisy"] + 2.0, sdr
    assert all(v > sdr["noisy"] + 1.0 for m, v in sdr.items() if m != "noisy"), sdr
    settings = section["settings"]["network"]  # the experiment's recipe, with the demo's copies and epochs
    assert settings["objective"] == "signal" and settings["noise_aware"] and settings["context_bands"] == 64
    assert (settings["n_copies"], settings["epochs"]) == (cfg["dnn_copies"], cfg["dnn_epochs"])
    assert section["settings"]["gain"]["dnn"]["exponent"] == 2.0


def test_demo_refuses_bad_options(tmp_path):
    from deepnmf.pipelines.demo import run_demo

    with pytest.raises(ParameterError, match="data must be one of auto, synthetic, real"):
        run_demo(tmp_path, data="imaginary")
    with pytest.raises(ParameterError, match="jobs must be among"):
        run_demo(tmp_path, jobs=("juggling",))


def test_speech_like_follows_its_pitch_contour():
    sig = speech_like(2.0, speaker=1, seed=3)
    assert sig.audio.shape == (32000,) and np.abs(sig.audio).max() == pytest.approx(0.9, rel=1e-4)
    voiced = sig.f0 > 0
    assert 0.3 < voiced.mean() < 0.95  # syllables and pauses
    assert 185 * 0.8 < np.median(sig.f0[voiced]) < 245 * 1.1  # an odd speaker: a high voice
    # the strongest periodicity of a voiced stretch is at its pitch (autocorrelation, independent of the generator)
    mid = np.flatnonzero(voiced)[len(np.flatnonzero(voiced)) // 2]
    seg = sig.audio[mid - 400: mid + 400].astype(float)
    ac = np.correlate(seg, seg, mode="full")[seg.size:]
    lo, hi = int(16000 / 400), int(16000 / 80)
    lag = lo + int(np.argmax(ac[lo:hi]))
    assert 16000 / lag == pytest.approx(sig.f0[mid], rel=0.12)
    low = speech_like(2.0, speaker=0, seed=3)
    assert np.median(low.f0[low.f0 > 0]) < 150
    np.testing.assert_array_equal(speech_like(1.0, seed=4).audio, speech_like(1.0, seed=4).audio)


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_its_spectral_slope(kind, slope):
    from scipy.signal import welch

    x = noise_signal(kind, 4.0, seed=0)
    f, P = welch(x, fs=16000, nperseg=2048)
    band = (f > 100) & (f < 4000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(P[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.2)


def test_every_noise_kind_is_finite_and_scaled():
    for kind in NOISE_KINDS:
        x = noise_signal(kind, 0.5, seed=1)
        assert x.dtype == np.float32 and x.shape == (8000,) and np.abs(x).max() == pytest.approx(0.9, rel=1e-4)
    hum = noise_signal("hum", 2.0, seed=0)
    spectrum = np.abs(np.fft.rfft(hum))
    assert np.argmax(spectrum) * 16000 / hum.size == pytest.approx(50, abs=1)
    with pytest.raises(ParameterError, match="kind must be one of"):
        noise_signal("traffic")
    with pytest.raises(ParameterError, match="need duration > 0"):
        speech_like(0.0)
