"""``deepnmf train``: real TIMIT audio and .npy input, both models, output files, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import deepnmf.cli.train  # noqa: F401  (registers the command)
from deepnmf import NMF, VAENMF, ImplicitNMF
from deepnmf.cli.app import app


def run(*args: str):
    return CliRunner().invoke(app, ["train", *map(str, args)])


@pytest.fixture(scope="module")
def timit_files(data_dir):
    folder = data_dir / "speech" / "timit-sample" / "dr1-fvmh0"
    files = sorted(folder.glob("*.wav"))[:2]
    assert len(files) == 2, f"expected TIMIT sentences in {folder}"
    return files


@pytest.fixture(scope="module")
def planted_npy(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.gamma(1.0, 1.0, (300, 3)) @ rng.uniform(size=(3, 12))
    path = tmp_path_factory.mktemp("npy") / "X.npy"
    np.save(path, X)
    return path, X


def test_vae_nmf_on_real_speech(timit_files, tmp_path):
    out = tmp_path / "speech-dict"
    result = run(*timit_files, "--model", "vae-nmf", "--rank", 4, "--out", out, "--n-fft", 256, "--hop", 128,
                 "--max-epochs", 2, "--seed", 0)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train.json").read_text())
    n_samples = [sf.info(str(f)).frames for f in timit_files]  # TIMIT is 16 kHz already
    expected_frames = sum(1 + n // 128 for n in n_samples)  # centred STFT
    data = report["data"]
    assert data["kind"] == "audio" and data["n_files"] == 2
    assert data["n_features"] == 129 and data["n_samples"] == expected_frames
    assert data["seconds"] == pytest.approx(sum(n_samples) / 16000, abs=1e-3)
    assert report["n_iter"] == 2 and report["settings"]["params"]["hidden"] == [400, 400]
    assert np.isfinite(report["final"]["train_loss"]) and report["seconds"] > 0
    model = VAENMF.load(out)
    assert model.components_.shape == (4, 129) and (model.components_ >= 0).all()
    assert report["final"]["train_loss"] == pytest.approx(model.loss_curve_[-1])
    for name in ("elbo.png", "dictionary.png"):
        assert (out / name).stat().st_size > 1000


def test_implicit_nmf_on_real_speech_grid_and_points(timit_files, tmp_path):
    """iN-NMF from the CLI: on the STFT grid (KL by default) and on a hybrid point cloud of the same files."""
    out = tmp_path / "grid"
    result = run(*timit_files, "--model", "implicit", "--rank", 3, "--out", out, "--n-fft", 256, "--hop", 128,
                 "--max-epochs", 15, "--seed", 0, "--power", 0.5)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train.json").read_text())
    model = ImplicitNMF.load(out)
    assert model.mode == "grid" and model.loss == "kl" and report["settings"]["likelihood"] == "poisson"
    assert model.components_.shape == (3, 129) and model.n_iter_ == 15
    np.testing.assert_allclose(model.freqs_, np.linspace(0, 8000, 129))
    assert report["final"]["loss"] == pytest.approx(model.loss_curve_[-1])
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.dictionary_at(np.linspace(0, 8000, 300)).shape == (3, 300)  # any resolution
    for name in ("loss.png", "dictionary.png"):
        assert (out / name).stat().st_size > 1000

    out = tmp_path / "points"
    result = run(*timit_files, "--model", "implicit-points", "--rank", 2, "--out", out, "--n-fft", 512,
                 "--hop", 256, "--max-epochs", 5, "--seed", 0, "--likelihood", "gaussian", "--no-figures")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train.json").read_text())
    model = ImplicitNMF.load(out)
    assert model.mode == "points" and model.loss == "frobenius" and model.n_iter_ == 5
    data = report["data"]
    assert data["groups"] == ["stft-128/64", "stft-512/256", "cqt-256"] and data["n_points"] > 100_000
    assert model.duration_ == pytest.approx(data["seconds"], abs=1e-3)


def test_nmf_on_a_matrix(planted_npy, tmp_path):
    path, X = planted_npy
    out = tmp_path / "nmf"
    result = run(path, "--model", "nmf", "--rank", 3, "--out", out, "--max-epochs", 30, "--seed", 1,
                 "--likelihood", "poisson", "--no-figures")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train.json").read_text())
    model = NMF.load(out)
    assert model.beta_loss == "kullback-leibler" and model.components_.shape == (3, 12)
    assert report["data"] == {**report["data"], "kind": "matrix", "n_samples": 300, "n_features": 12}
    assert report["data"]["mean"] == pytest.approx(X.mean())
    assert report["final"]["objective"] == pytest.approx(model.loss_curve_[-1])
    assert "figures" not in report and not (out / "loss.png").exists()


@pytest.mark.parametrize(
    "make,args,message",
    [
        (lambda p: np.save(p, -np.ones((5, 4))), ["--rank", 2], "negative values"),
        (lambda p: np.save(p, np.ones((5, 4, 2))), ["--rank", 2], "3-D array"),
        (lambda p: np.save(p, np.full((5, 4), np.nan)), ["--rank", 2], "NaN or infinite"),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "pca"], "--model must be one of"),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 0], "--rank and --max-epochs must be >= 1"),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--likelihood", "cauchy"], "--likelihood must be"),
        (lambda p: None, ["--rank", 2], "does not exist"),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "implicit"], "needs the frequency"),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "implicit-points"], "needs the frequency"),
    ],
)
def test_bad_input_exits_with_a_message(tmp_path, make, args, message):
    path = tmp_path / "X.npy"
    make(path)
    result = run(path, "--out", tmp_path / "m", "--max-epochs", 1, *args)
    assert result.exit_code == 2
    assert message.lower() in result.output.lower()
    assert "Traceback" not in result.output


def test_missing_audio_folder_is_reported(tmp_path):
    result = run(tmp_path / "nowhere", "--rank", 2, "--out", tmp_path / "m")
    assert result.exit_code == 2 and "neither an audio file nor a folder" in result.output


def test_nmf_options_reach_the_estimator(tmp_path):
    """Any beta, init, penalties, a mask and fixed atoms are reachable from `deepnmf train --model nmf`."""
    import json

    import numpy as np
    from typer.testing import CliRunner

    from deepnmf import NMF
    from deepnmf.cli.main import app

    rng = np.random.default_rng(0)
    X = rng.random((40, 12))
    mask = (rng.random(X.shape) > 0.2).astype(float)
    atoms = rng.random((1, 12))
    corrupt = X.copy()
    corrupt[mask == 0] = 1e6  # masked entries must not matter
    for name, data in (("x.npy", X), ("corrupt.npy", corrupt), ("m.npy", mask), ("f.npy", atoms)):
        np.save(tmp_path / name, data)
    outputs = []
    for data in ("x.npy", "corrupt.npy"):
        out = tmp_path / f"model-{data}"
        args = ["train", str(tmp_path / data), "--model", "nmf", "--rank", "3", "--out", str(out), "--beta-loss", "0.5",
                "--init", "nndsvdar", "--alpha-w", "0.01", "--l1-ratio", "1", "--mask", str(tmp_path / "m.npy"),
                "--fixed-components", str(tmp_path / "f.npy"), "--max-epochs", "50", "--seed", "0", "--no-figures"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs.append(NMF.load(out))
    params = json.loads((tmp_path / "model-x.npy" / "train.json").read_text())["settings"]["params"]
    assert params["beta_loss"] == 0.5 and params["init"] == "nndsvdar" and params["l1_ratio"] == 1.0
    np.testing.assert_array_equal(outputs[0].components_[0], atoms[0])
    np.testing.assert_allclose(outputs[0].components_, outputs[1].components_, rtol=1e-10)


def test_dictionary_rows_sit_at_their_frequencies_when_unevenly_spaced(tmp_path):
    """A point cloud's frequencies are uneven: each row spans from midpoint to midpoint (an image would stretch)."""
    from deepnmf.plotting.vae import plot_dictionary, uneven_row_edges

    even = np.linspace(0, 8000, 9)
    assert uneven_row_edges(even) is None
    uneven = np.array([0.0, 50.0, 100.0, 440.0, 1000.0, 8000.0])
    edges = uneven_row_edges(uneven)
    np.testing.assert_allclose(edges, [-25.0, 25.0, 75.0, 270.0, 720.0, 4500.0, 11500.0])
    assert np.all((edges[:-1] <= uneven) & (uneven <= edges[1:]))
    atoms = np.eye(2, 6)[:, ::-1] + 0.01  # peaks at 8000 and 1000 Hz
    assert plot_dictionary(atoms, tmp_path / "d.png", freqs=uneven).stat().st_size > 1000
