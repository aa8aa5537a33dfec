"""The demo job recovers the generated notes; synthetic generators; component matching."""
import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.cli.main import app
from deepnmf.datasets.synthetic import harmonic_notes, planted_nmf
from deepnmf.exceptions import DataError
from deepnmf.matching import match_components


def test_demo_command_recovers_notes(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--n-notes", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["mean_atom_cosine"] > 0.95
    assert min(summary["activation_correlation_to_truth"]) > 0.8
    assert summary["objective"]["final"] < summary["objective"]["initial"]
    for name in ("nmf.png", "notes.wav", "model/config.json", "model/weights.safetensors"):
        assert (tmp_path / "d" / name).is_file()


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


def test_run_demo_pipeline_writes_what_it_returns(tmp_path):
    """The library call behind `deepnmf demo`: summary.json is the returned summary, the saved model reloads."""
    from deepnmf import load_model
    from deepnmf.pipelines.demo import run_demo

    infos = []
    summary = run_demo(tmp_path, seed=1, n_notes=2, max_iter=60, callback=infos.append)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    model = load_model(tmp_path / "model")
    assert summary["model"]["n_iter"] == model.n_iter_ == len(infos) and {i.stage for i in infos} == {"demo"}
    assert summary["objective"]["final"] == pytest.approx(infos[-1].train["loss"])
    assert summary["data"]["shape"][1] == model.components_.shape[1] == 1024 // 2 + 1
