"""The enhancement experiment, ``deepnmf experiment enhancement`` and ``deepnmf enhance`` on generated audio.

Nothing here reads ``../shared/data``: speakers and noises come from the
``synthetic_audio`` fixture (tests/conftest.py). Sizes are tiny; what is
checked is the protocol (rows, files, caches, progress, figures drawn from the
rows) and that the CLI commands are their library calls.
"""
from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import deepnmf.plotting.enhancement as enhancement_plots
from deepnmf.audio import mixing
from deepnmf.audio.io import load_audio, save_audio
from deepnmf.cli.main import app
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.experiments.enhancement import ROW_KEYS, EnhancementConfig, run_enhancement
from deepnmf.io.model_files import peek_model_type
from deepnmf.metrics import bss_eval

#: tiny sizes on purpose: dictionaries with 30 iterations have not converged, and need not have
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

runner = CliRunner()
METHODS = ("nmf+mu", "nmf+dnn", "vae-nmf+encoder", "dnn-mask")


def _config(audio, out, **kw) -> EnhancementConfig:
    base = dict(train_speech=audio["train"], test_speech=audio["test"], noises=[audio["noise_files"]["hum"]],
                out=out, snrs=(0.0,), methods=METHODS, n_test=2, n_components=6, speech_frames=600, noise_frames=300,
                nmf_iter=30, vae_epochs=2, dnn_epochs=2, dnn_hidden=(16,), babble_seconds=8.0, random_state=0,
                mask_copies=None, mask_epochs=None, mask_max_mixtures=None)
    base.update(kw)
    return EnhancementConfig(**base)


class FigureRecorder:
    """Stands in for a plotting module's ``finish_figure``: keeps each Figure, then saves it as usual."""

    def __init__(self, original):
        self.original, self.figures = original, []

    def __call__(self, fig, path, **kw):
        self.figures.append(fig)
        return self.original(fig, path, **kw)


@pytest.fixture(scope="module")
def run(synthetic_audio, tmp_path_factory):
    """One tiny run of the protocol: its config, rows, progress records and the SDR figure it drew."""
    cfg = _config(synthetic_audio, tmp_path_factory.mktemp("enh"))
    infos = []
    with pytest.MonkeyPatch.context() as mp:
        recorder = FigureRecorder(enhancement_plots.finish_figure)
        mp.setattr(enhancement_plots, "finish_figure", recorder)
        rows = run_enhancement(cfg, progress=infos.append)
    return {"cfg": cfg, "rows": rows, "infos": infos, "figures": recorder.figures}


def _cell(rows, method, noise, snr=0.0):
    (row,) = [r for r in rows if (r["method"], r["noise"], r["snr"]) == (method, noise, snr)]
    return row


def test_rows_and_files(run):
    cfg, rows = run["cfg"], run["rows"]
    assert len(rows) == (1 + len(METHODS)) * 1 * 1  # methods (and noisy) x noises x SNRs
    assert {r["method"] for r in rows} == {"noisy", *METHODS} and {r["noise"] for r in rows} == {"hum"}
    for r in rows:
        assert set(ROW_KEYS) <= set(r) and r["n_utterances"] == 2
        assert r["stoi"] is None or 0.0 <= r["stoi"] <= 1.0
    assert json.loads((cfg.out / "results.json").read_text()) == rows
    with open(cfg.out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [(t["method"], t["noise"]) for t in table] == [(r["method"], r["noise"]) for r in rows]
    md = (cfg.out / "results.md").read_text()
    assert "| **Avg.** |" in md and "| nmf+dnn | " in md and "significant" in md
    info = json.loads((cfg.out / "run.json").read_text())
    # n_test utterances, taken round robin over the test speakers
    assert info["test_utterances"] == ["spk2/u0", "spk3/u0"]
    assert info["train_speakers"] == sorted(str(p) for p in cfg.train_speech) and info["noises"] == ["hum"]
    assert info["gains"]["nmf+mu"] == {"power": 0.5, "floor": 0.0, "exponent": 1.0}
    assert info["gains"]["nmf+dnn"] == {"power": 1.0, "floor": 0.0, "exponent": 2.0}
    assert info["gains"]["dnn-mask"] == {"exponent": 2.0}
    # the machine: networks round differently on another CPU
    env = info["environment"]
    assert env["cpu"] and env["cpu_count"] >= 1 and env["torch_threads"] >= 1
    assert env["packages"]["torch"] == torch.__version__


def test_noisy_row_scores_the_mixture_at_its_snr(run):
    assert _cell(run["rows"], "noisy", "hum")["sdr"] == pytest.approx(0.0, abs=1.0)


def test_supervised_dictionaries_remove_stationary_noise(run):
    rows = run["rows"]
    assert _cell(rows, "nmf+mu", "hum")["sdr"] > _cell(rows, "noisy", "hum")["sdr"] + 1.0


def test_progress_records(run):
    infos = run["infos"]
    stages = [i.stage for i in infos]
    assert stages[0] == "data" and set(stages) == {"data", "models", "evaluate"}
    assert stages.index("evaluate") > max(k for k, s in enumerate(stages) if s == "models")
    evaluate = [i for i in infos if i.stage == "evaluate"]
    assert [i.epoch for i in evaluate] == [1, 2] and {i.max_epochs for i in evaluate} == {2}  # utterances x SNRs
    models = [i for i in infos if i.stage == "models"]
    assert models[-1].message == "done" and models[-1].epoch == models[-1].max_epochs


def test_sdr_figure_draws_the_improvement_of_each_method(run):
    (fig,) = run["figures"]
    (ax,) = fig.axes
    rows = run["rows"]
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert list(lines) == list(METHODS)
    for method, line in lines.items():
        naive = _cell(rows, method, "hum")["sdr"] - _cell(rows, "noisy", "hum")["sdr"]
        np.testing.assert_allclose(line.get_xdata(), [0.0])
        np.testing.assert_allclose(line.get_ydata(), [naive], rtol=1e-9)
    assert ax.get_xlabel() == "input SNR (dB)" and ax.get_ylabel() == "SDR improvement (dB)"
    assert ax.get_title().endswith("(hum)")


def test_models_are_model_folders_and_reruns_reuse_them(run, synthetic_audio):
    cfg, rows = run["cfg"], run["rows"]
    stamps = {p: p.stat().st_mtime_ns for p in (cfg.out / "models").rglob("weights.safetensors")}
    kinds = Counter(peek_model_type(p.parent) for p in stamps)
    # nmf and vae-nmf: speech and noise dictionaries; an activation network; a mask enhancer (an ensemble of 2 networks)
    assert kinds == {"NMF": 2, "VAENMF": 2, "FrameNetwork": 1 + 2, "MaskEnhancer": 1}
    again = run_enhancement(_config(synthetic_audio, cfg.out, methods=["nmf+mu"]))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing was retrained
    for r in again:
        assert r["sdr"] == pytest.approx(_cell(rows, r["method"], "hum")["sdr"], abs=1e-6)


def test_runner_bad_input(synthetic_audio, tmp_path):
    a = synthetic_audio
    cases = {
        "both the training and the test": dict(test_speech=[a["train"][0]]),
        "does not exist": dict(noises=[tmp_path / "missing.wav"]),
        "only 4": dict(n_test=5),
        "sr must be 8000 or 16000": dict(sr=44100),
        "snrs must be finite": dict(snrs=(0.0, float("nan"))),
        "n_components must be": dict(n_components=0),
        "is given twice": dict(noises=["babble", "babble"]),
    }
    short = save_audio(tmp_path / "short.wav", 0.1 * np.random.default_rng(0).standard_normal(16000 * 2), 16000)
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000 * 10), 16000)
    cases["test part .* is shorter"] = dict(noises=[short])
    cases["silent"] = dict(noises=[silent])
    cases["babble needs at least 2 training speakers"] = dict(train_speech=[a["train"][0]], noises=["babble"])
    for message, change in cases.items():
        with pytest.raises((DataError, ParameterError), match=message):
            run_enhancement(_config(a, tmp_path / "out", **change))


# ------------------------------------------------------------------ CLI
def test_cli_experiment_is_the_runner(synthetic_audio, tmp_path):
    a = synthetic_audio
    args = ["experiment", "enhancement", "--train-speech", *map(str, a["train"]), "--test-speech", *map(str, a["test"]),
            "--noise", "babble", "--snr", "5", "--methods", "nmf+mu", "--n-test", "1",
            "--rank", "4", "--vae-epochs", "1", "--dnn-epochs", "1", "--seed", "3", "--out", str(tmp_path / "cli")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    md = (tmp_path / "cli" / "results.md").read_text()
    assert md in res.output
    cfg = EnhancementConfig(train_speech=a["train"], test_speech=a["test"], noises=["babble"],
                            out=tmp_path / "lib", snrs=[5.0], methods=["nmf+mu"], n_test=1, n_components=4,
                            vae_epochs=1, dnn_epochs=1, random_state=3)
    rows = run_enhancement(cfg)
    written = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert [r.keys() for r in written] == [r.keys() for r in rows]
    for got, want in zip(written, rows):
        assert got == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in want.items()}
    assert [(r["method"], r["noise"], r["snr"]) for r in rows] == [("noisy", "babble", 5.0), ("nmf+mu", "babble", 5.0)]


def test_cli_experiment_option_errors(synthetic_audio, tmp_path):
    a = synthetic_audio
    base = ["experiment", "enhancement", "--train-speech", *map(str, a["train"]), "--test-speech", str(a["test"][0]),
            "--noise", "babble", "--out", str(tmp_path)]
    cases = {"unknown method 'nmf+magic'": ["--methods", "nmf+mu,nmf+magic"],
             "--snr takes numbers of dB": ["--snr", "loud"],
             "dnn_lr must be a positive number": ["--dnn-lr", "0"],
             "dnn_batch_size must be an integer >= 1": ["--dnn-batch-size", "0"],
             "dnn_objective must be one of": ["--dnn-objective", "magic"],
             "dnn_lr_schedule must be one of": ["--dnn-lr-schedule", "linear"],
             "mask_networks must be an integer >= 1": ["--mask-networks", "0"],
             "mask_copies must be an integer >= 1": ["--mask-copies", "0"],
             "mask_epochs must be an integer >= 1": ["--mask-epochs", "0"],
             "dnn_loss_scale must be one of": ["--dnn-loss-scale", "loudest"],
             "dnn_noise_window must be an integer >= 0": ["--dnn-noise-window", "-1"],
             "dnn_context_bands must be an integer >= 0": ["--dnn-context-bands", "-1"],
             "dnmf_max_mixtures must be an integer >= 1": ["--dnmf-max-mixtures", "0"],
             "dnn_context_bands must be at most 257": ["--dnn-context-bands", "300"],
             "it needs dnn_noise_aware": ["--dnn-noise-window", "5", "--no-dnn-noise-aware"],
             "exponent must be a positive number": ["--exponent", "0"],
             "dnn_recurrent must be one of": ["--dnn-recurrent", "rnn"]}
    for message, extra in cases.items():  # option errors exit 2
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["experiment", "enhancement", "--train-speech", str(tmp_path / "none"), "--test-speech",
                              str(a["test"][0]), "--noise", "babble", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "neither an audio file nor a folder" in res.output  # data errors exit 1


@pytest.fixture(scope="module")
def noisy_file(synthetic_audio, run, tmp_path_factory):
    """An unseen utterance of a test speaker plus the later part of the hum noise at 0 dB, as a WAV; and its parts."""
    clean = synthetic_audio["speech"]["test/spk2"][1]
    hum = synthetic_audio["noises"]["hum"]
    y, s, n = mixing.mix_at_snr(clean, mixing.noise_excerpt(hum[hum.size // 2:], clean.size, random_state=1), 0.0)
    path = save_audio(tmp_path_factory.mktemp("noisy") / "noisy.wav", y, 16000, subtype="FLOAT")
    return path, s, n


def _sdr(clean, noise, estimate):
    return float(bss_eval(np.stack([clean, noise]), np.stack([estimate, noise]))["sdr"][0])


def test_cli_enhance_writes_what_enhance_file_computes(run, noisy_file, tmp_path, monkeypatch):
    from deepnmf.pipelines.enhancement import enhance_file

    models = run["cfg"].out / "models" / "nmf"
    path, clean, noise = noisy_file
    recorder = FigureRecorder(enhancement_plots.finish_figure)
    monkeypatch.setattr(enhancement_plots, "finish_figure", recorder)
    out = tmp_path / "enhanced.wav"
    res = runner.invoke(app, ["enhance", str(path), "-o", str(out), "--speech-model", str(models / "speech"),
                              "--noise-model", str(models / "noise-hum"), "--figure", str(tmp_path / "fig.png"),
                              "--report", str(tmp_path / "report.json")])
    assert res.exit_code == 0, res.output
    expected = enhance_file(path, speech_model=models / "speech", noise_model=models / "noise-hum")
    enhanced, sr = load_audio(out, dtype=np.float64)
    assert sr == 16000 and enhanced.shape == clean.shape
    np.testing.assert_allclose(enhanced, expected.enhanced, atol=2 / 2**15)  # 16-bit WAV
    assert _sdr(clean, noise, enhanced) > _sdr(clean, noise, clean + noise) + 1.0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["activations"] == "mu" and report["mean_gain"] == pytest.approx(float(np.mean(expected.gain)))
    # the figure: noisy spectrogram, gain and enhanced spectrogram (with their colour bars)
    (fig,) = recorder.figures
    Y = expected.noisy_magnitude()
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["noisy (dB)", "gain", "enhanced (dB)"]
    for image, want in zip(images, (20 * np.log10(Y + 1e-6), expected.gain, 20 * np.log10(Y * expected.gain + 1e-6))):
        np.testing.assert_allclose(np.asarray(image.get_array()), want.T, rtol=1e-5, atol=1e-5)
    assert (tmp_path / "fig.png").is_file()


@pytest.mark.parametrize("case", ["network", "encoder", "mask", "model"])
def test_cli_enhance_with_each_kind_of_model(run, noisy_file, tmp_path, case):
    models = run["cfg"].out / "models"
    path, clean, noise = noisy_file
    dictionaries = {"nmf": ["--speech-model", str(models / "nmf" / "speech"), "--noise-model", str(models / "nmf" / "noise-hum")],
                    "vae": ["--speech-model", str(models / "vae-nmf" / "speech"),
                            "--noise-model", str(models / "vae-nmf" / "noise-hum")]}
    extra, activations = {
        "network": ([*dictionaries["nmf"], "--network", str(models / "nmf" / "dnn-hum")], "dnn"),
        "encoder": ([*dictionaries["vae"], "--activations", "encoder"], "encoder"),
        "mask": (["--mask-network", str(models / "dnn-mask" / "mask-hum")], "mask"),
        "model": (["--model", str(models / "dnn-mask" / "mask-hum")], "mask"),
    }[case]
    out = tmp_path / "enhanced.wav"
    res = runner.invoke(app, ["enhance", str(path), "-o", str(out), *extra, "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert f"activations={activations}" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["activations"] == activations
    enhanced, _ = load_audio(out, dtype=np.float64)
    assert enhanced.shape == clean.shape and np.all(np.isfinite(enhanced))


def test_cli_enhance_bad_input(run, noisy_file, tmp_path):
    import soundfile as sf

    models = run["cfg"].out / "models"
    nmf = models / "nmf"
    base = ["--speech-model", str(nmf / "speech"), "--noise-model", str(nmf / "noise-hum")]
    noisy = str(noisy_file[0])
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000), 16000)
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    o = ["-o", str(tmp_path / "o.wav")]
    data_errors = {  # bad files and model folders: exit 1
        "is empty": [str(tmp_path / "empty.wav"), *o, *base],
        "does not exist": [str(tmp_path / "nope.wav"), *o, *base],
        "silent": [str(silent), *o, *base],
        "not a model folder": [noisy, *o, "--speech-model", str(tmp_path), "--noise-model", str(nmf / "noise-hum")],
        "trained for other speech/noise dictionaries": [noisy, *o, "--speech-model", str(nmf / "speech"), "--noise-model",
                                                        str(models / "vae-nmf" / "noise-hum"), "--network",
                                                        str(nmf / "dnn-hum")],
        "is not a mask network": [noisy, *o, "--mask-network", str(nmf / "dnn-hum")],
    }
    option_errors = {  # options that do not describe one enhancer: exit 2
        "works alone": [noisy, *o, *base, "--mask-network", str(models / "dnn-mask" / "mask-hum")],
    }
    for code, cases in ((1, data_errors), (2, option_errors)):
        for message, args in cases.items():
            res = runner.invoke(app, ["enhance", *args])
            assert res.exit_code == code, (message, res.output)
            assert message in res.output and "Traceback" not in res.output


def test_network_recipe_carries_the_training_settings_as_fit_arguments():
    import inspect

    from deepnmf.experiments.enhancement import _network_recipe, network_training
    from deepnmf.pipelines.enhancement import Enhancer
    from deepnmf.pipelines.network_training import RECOMMENDED, NetworkTraining
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused")
    dnn, mask = _network_recipe(cfg, "dnn"), _network_recipe(cfg, "mask")
    assert (dnn["batch_size"], dnn["lr_schedule"], dnn["objective"]) == (512, "cosine", "signal")
    assert "lr" not in dnn  # 1e-3: the library's default
    assert (mask["batch_size"], mask["output"], mask["objective"]) == (512, "joint", "signal")
    assert dnn["noise_aware"] is True and mask["noise_aware"] is True
    assert mask["n_networks"] == 2 and "n_networks" not in dnn  # the mask baseline is an ensemble of two
    single = _network_recipe(EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused",
                                               mask_networks=1), "mask")
    assert "n_networks" not in single  # a single network keeps the cache key of before
    # every setting is an argument of the fit call or a field of its NetworkTraining
    names = set(NetworkTraining.names())
    assert set(dnn) <= set(inspect.signature(Enhancer.fit_network).parameters) | names
    assert set(mask) <= set(inspect.signature(MaskEnhancer.fit).parameters) | names
    # and the training the experiment runs carries the config's values
    training = network_training(cfg, "dnn")
    assert (training.epochs, training.n_copies, tuple(training.hidden), training.batch_size, training.max_mixtures) == (
        cfg.dnn_epochs, cfg.dnn_copies, tuple(cfg.dnn_hidden), cfg.dnn_batch_size, cfg.dnn_max_mixtures)
    assert training.snr_range == (min(cfg.snrs), max(cfg.snrs)) and training.discriminative == cfg.dnn_discriminative
    assert training == RECOMMENDED  # the defaults are the one recipe, which the demo trains with too
    # the mask networks have their own mixtures and epochs; None falls back to the dnn_* ones
    masks = network_training(cfg, "mask")
    assert (masks.n_copies, masks.epochs, masks.max_mixtures) == (cfg.mask_copies, cfg.mask_epochs, cfg.mask_max_mixtures)
    assert masks.hidden == training.hidden and masks.context_bands == training.context_bands
    own = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", mask_copies=5, mask_epochs=7,
                            mask_max_mixtures=50)
    assert (network_training(own, "mask").n_copies, network_training(own, "mask").epochs,
            network_training(own, "mask").max_mixtures) == (5, 7, 50)
    assert network_training(own, "dnn") == network_training(cfg, "dnn")  # the activation networks keep theirs
    shared = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", mask_copies=None,
                               mask_epochs=None, mask_max_mixtures=None)
    masks = network_training(shared, "mask")
    assert (masks.n_copies, masks.epochs, masks.max_mixtures) == (shared.dnn_copies, shared.dnn_epochs, shared.dnn_max_mixtures)
    targets = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_objective="activations")
    assert network_training(targets, "dnn").discriminative == 0.0  # a target objective has no such term
    with pytest.raises(ParameterError, match="which"):
        network_training(cfg, "mu")
    # settings at the library's old values stay out of the recipe (older caches stay valid)
    old = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_batch_size=128,
                            dnn_lr=1e-3, dnn_objective="phase", dnn_noise_aware=False, dnn_lr_schedule="constant")
    recipe = _network_recipe(old, "dnn")
    assert "batch_size" not in recipe and "lr" not in recipe and "noise_aware" not in recipe
    # banded context: in both networks' training and recipes, absent from the recipe at 0 (every bin)
    for bands in (0, 48):
        banded = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_context_bands=bands)
        for which in ("dnn", "mask"):
            assert network_training(banded, which).context_bands == bands
            assert _network_recipe(banded, which).get("context_bands", 0) == bands
    assert "lr_schedule" not in recipe
    old = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_lr=2e-3,
                            dnn_lr_schedule="constant")
    assert _network_recipe(old, "mask")["lr"] == 2e-3 and "lr_schedule" not in _network_recipe(old, "mask")
    assert recipe["objective"] == "phase"
    assert "discriminative" in recipe
    for scale in ("mixture", "sdr"):  # the loss units enter the recipe only when they are not the old ones
        cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_loss_scale=scale)
        for which in ("dnn", "mask"):
            assert _network_recipe(cfg, which).get("loss_scale", "mixture") == scale
    targets = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_loss_scale="sdr",
                                dnn_objective="activations", mask_objective="mask")
    assert "loss_scale" not in _network_recipe(targets, "dnn") and "loss_scale" not in _network_recipe(targets, "mask")
    assert "noise_window" not in _network_recipe(cfg, "mask")  # 0 keeps the cache key of before
    running = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", dnn_noise_window=62)
    assert _network_recipe(running, "dnn")["noise_window"] == 62 == _network_recipe(running, "mask")["noise_window"]


def test_test_utterances_skip_sentences_read_in_training(tmp_path):
    """TIMIT's SA sentences are read by every speaker: a test file named as a training file is taken last."""
    from deepnmf.experiments.enhancement import _pick_test

    train = [tmp_path / "dr1-a" / f"{s}.wav" for s in ("sa1", "sa2", "si11")]
    test = [tmp_path / spk / f"{s}.WAV" for spk in ("dr6-b", "dr6-c") for s in ("SA1", "SA2", f"SX{spk[-1]}", f"SI{spk[-1]}")]
    names = lambda picked: [f"{p.parent.name}/{p.stem}" for p in picked]  # noqa: E731
    assert names(_pick_test(test, 4, train)) == ["dr6-b/SIb", "dr6-c/SIc", "dr6-b/SXb", "dr6-c/SXc"]
    # the shared sentences only once the others run out, still round robin over the speakers
    assert names(_pick_test(test, 6, train))[4:] == ["dr6-b/SA1", "dr6-c/SA1"]
    assert names(_pick_test(test, 2)) == ["dr6-b/SA1", "dr6-c/SA1"]  # no training files: sorted order
    with pytest.raises(DataError, match="only 8"):
        _pick_test(test, 9, train)


def test_one_file_per_utterance(tmp_path):
    """Some TIMIT copies keep the SPHERE original beside a converted WAV: one recording counts once."""
    from deepnmf.experiments.enhancement import _distinct, _pick_test, _utterance_name

    assert _utterance_name(tmp_path / "SA1.WAV.wav") == "sa1" == _utterance_name(tmp_path / "sa1.wav")
    assert _utterance_name(tmp_path / "SX5.PHN") == "sx5.phn"
    files = sorted(tmp_path / spk / n for spk in ("b", "c") for n in ("SA1.WAV", "SA1.WAV.wav", "SI7.WAV", "SI7.WAV.wav"))
    kept = _distinct(files)
    assert [f"{f.parent.name}/{f.name}" for f in kept] == ["b/SA1.WAV", "b/SI7.WAV", "c/SA1.WAV", "c/SI7.WAV"]
    picked = _pick_test(kept, 3, [tmp_path / "a" / "SA1.WAV.wav"])
    assert [f"{f.parent.name}/{f.name}" for f in picked] == ["b/SI7.WAV", "c/SI7.WAV", "b/SA1.WAV"]


def test_nmf_dictionary_runs_its_fixed_budget_without_convergence_warnings(tmp_path):
    """The paper's 200 iterations are the protocol: running out of them is not reported as a problem."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from deepnmf.experiments.enhancement import _make_dictionary
    from deepnmf.models.factory import make_estimator

    V = np.random.default_rng(0).gamma(1.0, 1.0, size=(60, 12))
    cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=[], out=tmp_path, n_components=3, nmf_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = _make_dictionary("nmf", V, cfg, seed=0)
    assert model.n_iter_ == 5 and model.components_.shape == (3, 12)
    with pytest.warns(ConvergenceWarning):  # the estimator itself still reports an exhausted budget
        make_estimator("nmf", 3, beta_loss="kullback-leibler", max_iter=5, random_state=0).fit(V)
