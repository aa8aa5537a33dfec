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


def test_vae_nmf_options_reach_the_estimator(planted_npy, tmp_path):
    """--init nmf, --kl-warmup and --kl-weight set VAENMF's parameters; a bad weight is a clear error."""
    path, X = planted_npy
    out = tmp_path / "vae"
    result = run(path, "--model", "vae-nmf", "--rank", 3, "--out", out, "--max-epochs", 3, "--seed", 0,
                 "--init", "nmf", "--kl-warmup", 2, "--kl-weight", 0.5, "--no-figures")
    assert result.exit_code == 0, result.output
    model = VAENMF.load(out)
    assert (model.init, model.kl_warmup, model.kl_weight) == ("nmf", 2, 0.5)
    bad = run(path, "--model", "vae-nmf", "--rank", 3, "--out", tmp_path / "bad", "--kl-weight", 0)
    assert bad.exit_code != 0 and "kl_weight must be > 0" in bad.output
    other = run(path, "--model", "nmf", "--rank", 3, "--out", tmp_path / "nmf", "--kl-weight", 0.5)
    assert other.exit_code == 2 and "VAE-NMF options; --model nmf has no KL term" in other.output
    implicit = run(path, "--model", "implicit", "--rank", 3, "--out", tmp_path / "inmf", "--init", "nmf")
    assert implicit.exit_code == 2 and "--model implicit has none" in implicit.output


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
    "make,args,message,code",  # bad data exits 1, a wrong option 2
    [
        (lambda p: np.save(p, -np.ones((5, 4))), ["--rank", 2], "negative values", 1),
        (lambda p: np.save(p, np.ones((5, 4, 2))), ["--rank", 2], "3-D array", 1),
        (lambda p: np.save(p, np.full((5, 4), np.nan)), ["--rank", 2], "NaN or infinite", 1),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "pca"], "model must be one of", 2),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 0], "rank and max_epochs must be >= 1", 2),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--likelihood", "cauchy"], "likelihood must be", 2),
        (lambda p: None, ["--rank", 2], "does not exist", 1),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "implicit"], "needs the frequency", 1),
        (lambda p: np.save(p, np.ones((5, 4))), ["--rank", 2, "--model", "implicit-points"], "needs the frequency", 1),
    ],
)
def test_bad_input_exits_with_a_message(tmp_path, make, args, message, code):
    path = tmp_path / "X.npy"
    make(path)
    result = run(path, "--out", tmp_path / "m", "--max-epochs", 1, *args)
    assert result.exit_code == code
    assert message.lower() in result.output.lower()
    assert "Traceback" not in result.output


def test_missing_audio_folder_is_reported(tmp_path):
    result = run(tmp_path / "nowhere", "--rank", 2, "--out", tmp_path / "m")
    assert result.exit_code == 1 and "neither an audio file nor a folder" in result.output


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


# ------------------------------------------------------------ the pipeline behind `deepnmf train`
def test_learn_dictionary_is_the_factory_model_fitted_on_the_same_data(planted_npy):
    """The pipeline's estimator equals one built by hand with the factory and fitted on the same matrix."""
    from deepnmf.models import make_estimator
    from deepnmf.pipelines.dictionary import learn_dictionary

    path, X = planted_npy
    est, report = learn_dictionary(path, model="nmf", rank=3, likelihood="poisson", max_epochs=40, random_state=2,
                                   init="nndsvda", tol=0.0)
    ref = make_estimator("nmf", 3, beta_loss="kullback-leibler", max_iter=40, random_state=2, init="nndsvda", tol=0.0)
    ref.fit(X)
    np.testing.assert_array_equal(est.components_, ref.components_)
    assert report["final"]["objective"] == ref.loss_curve_[-1] and report["n_iter"] == ref.n_iter_
    assert report["settings"]["params"]["beta_loss"] == "kullback-leibler" and report["data"]["kind"] == "matrix"


@pytest.mark.parametrize("model", ["nmf", "vae-nmf"])
def test_progress_records_follow_the_fit(planted_npy, model):
    """A notice first, then one EpochInfo per iteration/epoch tagged with the model, carrying its loss."""
    from deepnmf.callbacks import EpochInfo
    from deepnmf.pipelines.dictionary import learn_dictionary

    _, X = planted_npy
    infos: list[EpochInfo] = []
    extra = {"tol": 0.0} if model == "nmf" else {"early_stopping": False}
    est, _ = learn_dictionary(X, model=model, rank=2, max_epochs=6, random_state=0, callback=infos.append, **extra)
    notice, *epochs = infos
    assert notice.epoch == 0 and notice.message == "training %s (rank 2) on 300 x 12 data" % model
    assert [i.epoch for i in epochs] == list(range(1, 7)) and {i.stage for i in epochs} == {model}
    assert all(i.max_epochs == 6 for i in epochs)
    curve = est.loss_curve_[1:] if model == "nmf" else est.loss_curve_  # NMF's curve starts at the initial objective
    np.testing.assert_allclose([i.train["loss"] for i in epochs], curve)


def test_emg_envelopes_and_arrays_are_training_data():
    """An EMG Recording gives its envelopes (time x channels) and their channel names; a tensor is a matrix."""
    import torch

    from deepnmf.datasets.synthetic_emg import make_synthetic_emg
    from deepnmf.emg.preprocess import preprocess
    from deepnmf.pipelines.dictionary import load_training_data

    env = preprocess(make_synthetic_emg(n_channels=5, n_synergies=2, n_repetitions=2, random_state=1).recording)
    data = load_training_data(env, model="nmf")
    np.testing.assert_array_equal(data.X, env.data)
    assert data.summary["kind"] == "emg" and data.summary["channels"] == env.channels and data.freqs is None
    assert data.summary["n_features"] == 5 and data.summary["max"] == pytest.approx(env.data.max())
    tensor = load_training_data(torch.ones(4, 3), model="vae-nmf")
    assert tensor.summary["kind"] == "matrix" and tensor.X.shape == (4, 3)


@pytest.mark.parametrize("model", ["implicit", "implicit-points"])
def test_implicit_models_refuse_data_without_frequencies(model):
    from deepnmf.exceptions import DataError
    from deepnmf.pipelines.dictionary import load_training_data

    with pytest.raises(DataError, match="needs the frequency of every feature"):
        load_training_data(np.ones((4, 3)), model=model)


def test_nmf_only_options_are_refused_elsewhere_and_unknown_parameters_named(planted_npy):
    from deepnmf.exceptions import ParameterError
    from deepnmf.pipelines.dictionary import learn_dictionary

    _, X = planted_npy
    with pytest.raises(ParameterError, match="mask are NMF options; model 'vae-nmf'"):
        learn_dictionary(X, model="vae-nmf", rank=2, mask=np.ones_like(X))
    with pytest.raises(ParameterError, match="takes no parameter 'alpha_W'"):
        learn_dictionary(X, model="vae-nmf", rank=2, alpha_W=0.1)


def test_likelihoods_map_to_each_models_loss():
    """One mapping: each likelihood names the same divergence for NMF (beta) and iN-NMF (short name)."""
    from deepnmf.pipelines.dictionary import LIKELIHOOD_LOSSES, loss_params

    betas = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}
    for likelihood, expected_beta in (("gaussian", 2.0), ("poisson", 1.0), ("exponential", 0.0)):
        nmf = loss_params("nmf", likelihood)["beta_loss"]
        assert betas[nmf] == expected_beta
        assert loss_params("implicit", likelihood)["loss"] == LIKELIHOOD_LOSSES[likelihood][1]
        assert loss_params("vae-nmf", likelihood) == {"likelihood": likelihood}
    assert loss_params("nmf", "poisson", 0.5) == {"beta_loss": 0.5}  # an explicit beta wins


def test_write_dictionary_round_trips_through_the_loader(planted_npy, tmp_path):
    from deepnmf import load_model
    from deepnmf.pipelines.dictionary import learn_dictionary, write_dictionary

    _, X = planted_npy
    est, report = learn_dictionary(X, model="vae-nmf", rank=2, max_epochs=3, random_state=0)
    written = write_dictionary(est, report, tmp_path / "m", figures=False)
    assert json.loads((tmp_path / "m" / "train.json").read_text()) == written == report
    np.testing.assert_allclose(load_model(tmp_path / "m").components_, est.components_)


def test_progress_callback_draws_one_bar_per_stage():
    """The CLI's bars: the first stage renames the given task, a new stage adds one, a notice adds none."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from deepnmf.callbacks import EpochInfo
    from deepnmf.cli.app import describe, progress_callback

    progress = Progress(console=Console(file=io.StringIO()))
    task = progress.add_task("start", total=None)
    report = progress_callback(progress, task)
    report(EpochInfo(0, 0, message="a notice"))
    report(EpochInfo(1, 4, {"loss": 2.5}, {"loss": 3.0}, stage="source 1"))
    report(EpochInfo(3, 4, {"loss": 2.0}, stage="source 1"))
    report(EpochInfo(1, 10, stage="source 2", message="half"))
    first, second = progress.tasks
    assert (first.description, first.total, first.completed) == ("source 1", 4, 3)
    assert (second.description, second.total, second.completed) == ("source 2", 10, 1)
    assert second.fields["info"] == "half"
    assert describe(EpochInfo(1, 4, {"loss": 2.5}, {"loss": 3.0})) == "loss 2.5 val 3"


def test_progress_in_a_log_is_lines(capsys, monkeypatch):
    """Where stderr is no terminal the bars stay silent and each stage writes a line when it starts, when it
    completes and at most every LINE_EVERY_S seconds between."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    import deepnmf.cli.app as cli_app
    from deepnmf.callbacks import EpochInfo

    progress = Progress(console=Console(file=io.StringIO()))  # not a terminal
    report = cli_app.progress_callback(progress, progress.add_task("start", total=None))
    for epoch in range(1, 6):
        report(EpochInfo(epoch, 5, {"loss": float(epoch)}, stage="source 1"))
    report(EpochInfo(1, 2, stage="source 2", message="half"))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["source 1: 1/5 loss 1", "source 1: 5/5 loss 5",
                                                         "source 2: 1/2 half"]
    assert all(line.startswith("[0:0") for line in lines)
    monkeypatch.setattr(cli_app, "LINE_EVERY_S", 0.0)
    report = cli_app.progress_callback(progress, progress.add_task("again", total=None))
    for epoch in range(1, 4):
        report(EpochInfo(epoch, 10, stage="source 3"))
    assert len(capsys.readouterr().err.splitlines()) == 3
    # a terminal keeps the live bars and writes no lines
    terminal = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    cli_app.progress_callback(terminal, terminal.add_task("t", total=None))(EpochInfo(1, 5, stage="s"))
    assert capsys.readouterr().err == ""

