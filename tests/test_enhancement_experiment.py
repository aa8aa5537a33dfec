"""The enhancement experiment runner and the enhance / experiment enhancement commands (tiny sizes, real data)."""
from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.audio.io import load_audio, save_audio
from deepnmf.cli.main import app
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.io.model_files import peek_model_type
from deepnmf.experiments.enhancement import ROW_KEYS, EnhancementConfig, parse_methods, run_enhancement

runner = CliRunner()


def _tiny(data_dir, out, **kw):
    timit = data_dir / "speech" / "timit-sample"
    base = dict(
        train_speech=[timit / "dr1-fvmh0", timit / "dr1-mcpm0"], test_speech=[timit / "dr6-fapb0", timit / "dr6-mbma1"],
        noises=[data_dir / "noise" / "noisex-excerpts" / "factory2.wav", "babble"], out=out, snrs=(0.0, 10.0),
        methods=("nmf+mu", "nmf+dnn", "dnn-mask"), n_test=2, n_components=6, speech_frames=1500, noise_frames=800,
        nmf_iter=30, dnn_epochs=2, dnn_hidden=(32,), babble_seconds=20.0, random_state=0,
        mask_copies=None, mask_epochs=None, mask_max_mixtures=None,  # the mask networks train as the others
    )
    base.update(kw)
    return EnhancementConfig(**base)


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("enh")
    cfg = _tiny(data_dir, out)
    return cfg, run_enhancement(cfg)


def test_rows_and_files(tiny_run):
    cfg, rows = tiny_run
    out = cfg.out
    assert len(rows) == 4 * 2 * 2  # (noisy + 3 methods) x 2 noises x 2 SNRs
    assert {r["method"] for r in rows} == {"noisy", "nmf+mu", "nmf+dnn", "dnn-mask"}
    assert {r["noise"] for r in rows} == {"factory2", "babble"}
    for r in rows:
        assert set(ROW_KEYS) <= set(r)
        assert r["n_utterances"] == 2
    saved = json.loads((out / "results.json").read_text())
    assert saved == rows
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    md = (out / "results.md").read_text()
    assert "| method | 0 dB | 10 dB | **Avg.** |" in md and "Table 1" in md
    assert all(f"| {m} | " in md for m in ("noisy", "nmf+mu", "nmf+dnn", "dnn-mask"))
    for r in rows:  # the interval brackets the mean and the per-utterance values give the mean
        for key in ("sdr", "stoi"):
            lo, hi = r[f"{key}_ci95"]
            assert lo <= r[key] <= hi
            assert np.mean(r["per_utterance"][key]) == pytest.approx(r[key])
        assert len(r["utterances"]) == r["n_utterances"]
    comparisons = json.loads((out / "comparisons.json").read_text())
    assert len(comparisons["sdr"]) == 4 * 3 // 2
    assert all(c["n"] == 2 * 2 and c["p_holm"] >= c["p_value"] for c in comparisons["sdr"])  # 2 utterances x 2 noises
    assert "Which SDR (dB) differences are significant" in md
    assert (out / "sdr_improvement.png").stat().st_size > 1000
    # the noisy row scores the unprocessed mixture: its SDR is close to the input SNR
    for r in rows:
        if r["method"] == "noisy":
            assert r["sdr"] == pytest.approx(r["snr"], abs=0.5)


def test_supervised_enhancement_helps_on_factory_noise(tiny_run):
    _, rows = tiny_run
    cell = {(r["method"], r["noise"], r["snr"]): r for r in rows}
    assert cell[("nmf+mu", "factory2", 0.0)]["sdr"] > cell[("noisy", "factory2", 0.0)]["sdr"] + 2.0


def test_rerun_reuses_cached_models(tiny_run):
    cfg, rows = tiny_run
    models = cfg.out / "models"
    stamps = {p: p.stat().st_mtime_ns for p in models.rglob("weights.safetensors")}
    kinds = Counter(peek_model_type(p.parent) for p in stamps)
    # speech and two noise dictionaries, two activation networks, two mask enhancers (each an ensemble of 2 networks)
    assert kinds == {"NMF": 3, "FrameNetwork": 2 + 2 * 2, "MaskEnhancer": 2}
    again = run_enhancement(cfg)
    assert {p: p.stat().st_mtime_ns for p in models.rglob("weights.safetensors")} == stamps
    assert [r["sdr"] for r in again] == pytest.approx([r["sdr"] for r in rows], abs=1e-6)
    info = json.loads((cfg.out / "run.json").read_text())
    assert info["test_utterances"] and len(info["train_speakers"]) == 2


def test_scoring_in_worker_processes_gives_the_same_rows(tiny_run):
    """jobs=2 scores in a spawned pool while this process enhances on one thread: the same rows (up to the
    round-off of a one-thread enhancement; the noisy mixture's SAR is round-off itself, some 150 dB)."""
    from dataclasses import replace

    from deepnmf.experiments.enhancement import build_models, evaluate, load_corpus

    cfg, rows = tiny_run
    cfg = replace(cfg, jobs=2)
    corpus = load_corpus(cfg)
    methods = parse_methods(cfg.methods)
    again = evaluate(corpus, cfg, methods, build_models(corpus, cfg, methods))
    assert [(r["method"], r["noise"], r["snr"], r["utterances"]) for r in again] == \
        [(r["method"], r["noise"], r["snr"], r["utterances"]) for r in rows]
    for a, b in zip(again, rows):
        for key in ("sdr", "sir", "pesq", "stoi") + (() if a["method"] == "noisy" else ("sar",)):
            assert a["per_utterance"][key] == pytest.approx(b["per_utterance"][key], abs=1e-3), (a["method"], key)


def test_models_fitted_in_worker_processes(tiny_run, data_dir, tmp_path):
    """jobs=2: the dictionaries, then each noise model's networks, fitted by two spawned workers into the cache:
    the same folders and recipes as in one process, the same dictionaries up to one thread's rounding, scores
    within 0.05 dB, and a later run in one process loads them all."""
    from deepnmf.io.model_files import load_model

    cfg, rows = tiny_run
    out = tmp_path / "jobs2"
    again = run_enhancement(_tiny(data_dir, out, jobs=2))
    recipes = {p.relative_to(cfg.out): p.read_text() for p in (cfg.out / "models").rglob("recipe.json")}
    assert {p.relative_to(out): p.read_text() for p in (out / "models").rglob("recipe.json")} == recipes
    for folder in ("nmf/speech", "nmf/noise-factory2", "nmf/noise-babble"):
        H1, H2 = (load_model(base / "models" / folder).components_ for base in (cfg.out, out))
        np.testing.assert_allclose(H2, H1, rtol=1e-3, atol=1e-6 * float(np.abs(H1).max()))
    assert [(r["method"], r["noise"], r["snr"]) for r in again] == [(r["method"], r["noise"], r["snr"]) for r in rows]
    assert [r["sdr"] for r in again] == pytest.approx([r["sdr"] for r in rows], abs=0.05)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("weights.safetensors")}
    run_enhancement(_tiny(data_dir, out, jobs=1))
    assert {p: p.stat().st_mtime_ns for p in (out / "models").rglob("weights.safetensors")} == stamps


def test_parse_methods():
    assert parse_methods("nmf+mu, vae-nmf+dnn,noisy") == [("nmf", "mu"), ("vae-nmf", "dnn")]
    with pytest.raises(ParameterError, match="unknown method 'nmf\\+wiener'"):
        parse_methods(["nmf+wiener"])
    with pytest.raises(ParameterError, match="only for vae-nmf"):
        parse_methods("nmf+encoder")
    assert parse_methods("dnn-mask,nmf+dnn") == [("dnn", "mask"), ("nmf", "dnn")]


def test_vae_dictionary_follows_the_config():
    from deepnmf.experiments.enhancement import _make_dictionary

    V = np.random.default_rng(0).gamma(1.0, 1.0, size=(200, 12))
    cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", n_components=3, vae_epochs=2)
    model = _make_dictionary("vae-nmf", V, cfg, 0)
    assert (model.likelihood, model.kl_warmup, model.n_iter_) == ("poisson", 10, 2)  # the defaults chosen on validation
    cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=["babble"], out="unused", n_components=3,
                            vae_epochs=1, vae_likelihood="gaussian", vae_kl_warmup=0, vae_kl_weight=0.5)
    assert (lambda m: (m.likelihood, m.kl_warmup, m.kl_weight))(_make_dictionary("vae-nmf", V, cfg, 0)) == (
        "gaussian", 0, 0.5)


def test_runner_bad_input(data_dir, tmp_path):
    timit = data_dir / "speech" / "timit-sample"
    with pytest.raises(DataError, match="both the training and the test"):
        run_enhancement(_tiny(data_dir, tmp_path, test_speech=[timit / "dr1-fvmh0"]))
    with pytest.raises(DataError, match="does not exist"):
        run_enhancement(_tiny(data_dir, tmp_path, noises=[tmp_path / "missing.wav"]))
    with pytest.raises(DataError, match="only 2"):
        run_enhancement(_tiny(data_dir, tmp_path, test_speech=[timit / "dr6-fapb0" / "sa1.wav", timit / "dr6-fapb0" / "sa2.wav"], n_test=3))
    short = save_audio(tmp_path / "short.wav", 0.1 * np.random.default_rng(0).standard_normal(16000 * 2), 16000)
    with pytest.raises(DataError, match="test part .* is shorter"):
        run_enhancement(_tiny(data_dir, tmp_path, noises=[short]))
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000 * 10), 16000)
    with pytest.raises(DataError, match="silent"):
        run_enhancement(_tiny(data_dir, tmp_path, noises=[silent]))
    with pytest.raises(ParameterError, match="sr must be 8000 or 16000"):
        run_enhancement(_tiny(data_dir, tmp_path, sr=44100))
    with pytest.raises(ParameterError, match="vae_likelihood must be one of"):
        run_enhancement(_tiny(data_dir, tmp_path, vae_likelihood="laplace"))
    with pytest.raises(ParameterError, match="vae_kl_warmup must be an integer >= 0"):
        run_enhancement(_tiny(data_dir, tmp_path, vae_kl_warmup=-1))
    with pytest.raises(ParameterError, match="vae_kl_weight must be > 0"):
        run_enhancement(_tiny(data_dir, tmp_path, vae_kl_weight=0.0))
    named = save_audio(tmp_path / "speech.wav", 0.1 * np.random.default_rng(0).standard_normal(16000 * 30), 16000)
    with pytest.raises(ParameterError, match="cannot be named 'speech'"):
        run_enhancement(_tiny(data_dir, tmp_path, noises=[named]))
    with pytest.raises(ParameterError, match="jobs must be"):
        run_enhancement(_tiny(data_dir, tmp_path, jobs=0))


# ------------------------------------------------------------------ CLI
def test_cli_enhance_with_cached_models(tiny_run, data_dir, tmp_path):
    cfg, _ = tiny_run
    models = cfg.out / "models" / "nmf"
    clean, _ = load_audio(data_dir / "speech" / "timit-sample" / "dr6-fapb0" / "sa1.wav", dtype=np.float64)
    noise, _ = load_audio(data_dir / "noise" / "noisex-excerpts" / "factory2.wav", dtype=np.float64)
    noisy = save_audio(tmp_path / "noisy.wav", 0.5 * (clean + noise[-clean.size :] * np.std(clean) / np.std(noise)), 16000)
    out = tmp_path / "enhanced.wav"
    args = ["enhance", str(noisy), "-o", str(out), "--speech-model", str(models / "speech"),
            "--noise-model", str(models / "noise-factory2")]
    res = runner.invoke(app, [*args, "--network", str(models / "dnn-factory2"), "--figure", str(tmp_path / "fig.png"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    enhanced, sr = load_audio(out)
    assert sr == 16000 and enhanced.size == clean.size
    assert json.loads((tmp_path / "r.json").read_text())["activations"] == "dnn"
    assert (tmp_path / "fig.png").is_file()
    # a network trained for factory noise does not fit the babble dictionary
    res = runner.invoke(app, ["enhance", str(noisy), "-o", str(out), "--speech-model", str(models / "speech"),
                              "--noise-model", str(models / "noise-babble"), "--network", str(models / "dnn-factory2")])
    assert res.exit_code == 1 and "trained for other speech/noise dictionaries" in res.output
    assert "Traceback" not in res.output
    # the DNN mask baseline needs no dictionaries
    res = runner.invoke(app, ["enhance", str(noisy), "-o", str(out), "--mask-network", str(cfg.out / "models" / "dnn-mask" / "mask-factory2")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["enhance", str(noisy), "-o", str(out), "--mask-network", str(models / "dnn-factory2")])
    assert res.exit_code == 1 and "is not a mask network" in res.output


def test_cli_enhance_bad_input(tiny_run, tmp_path):
    cfg, _ = tiny_run
    models = cfg.out / "models" / "nmf"
    base = ["--speech-model", str(models / "speech"), "--noise-model", str(models / "noise-factory2")]
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000), 16000)
    import soundfile as sf

    sf.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    cases = {
        "is empty": ["enhance", str(tmp_path / "empty.wav"), "-o", str(tmp_path / "o.wav"), *base],
        "does not exist": ["enhance", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.wav"), *base],
        "silent": ["enhance", str(silent), "-o", str(tmp_path / "o.wav"), *base],
        "not a model folder": ["enhance", str(silent), "-o", str(tmp_path / "o.wav"), "--speech-model", str(tmp_path),
                               "--noise-model", str(models / "noise-factory2")],
        "give --speech-model and --noise-model": ["enhance", str(silent), "-o", str(tmp_path / "o.wav"),
                                                  "--speech-model", str(models / "speech")],
    }
    for message, args in cases.items():
        res = runner.invoke(app, args)  # bad data exits 1, a wrong combination of options 2
        assert res.exit_code == (2 if message.startswith("give") else 1), (message, res.output)
        assert message in res.output and "Traceback" not in res.output


def test_cli_experiment_multi_value_options_and_errors(data_dir, tmp_path):
    timit = data_dir / "speech" / "timit-sample"
    res = runner.invoke(app, ["experiment", "enhancement", "--train-speech", str(timit / "dr1-fvmh0"), str(timit / "dr1-mcpm0"),
                              "--test-speech", str(timit / "dr6-fapb0"), "--noise", "babble", "--snr", "-5", "0",
                              "--methods", "nmf+mu,nmf+magic", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown method 'nmf+magic'" in res.output
    res = runner.invoke(app, ["experiment", "enhancement", "--train-speech", str(tmp_path / "none"),
                              "--test-speech", str(timit / "dr6-fapb0"), "--noise", "babble", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "neither an audio file nor a folder" in res.output
    res = runner.invoke(app, ["experiment", "enhancement", "--train-speech", str(timit / "dr1-fvmh0"),
                              "--test-speech", str(timit / "dr6-fapb0"), "--noise", "babble", "--vae-likelihood", "laplace",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2 and "vae_likelihood must be one of" in res.output
    res = runner.invoke(app, ["experiment", "enhancement", "--train-speech", str(timit / "dr1-fvmh0"),
                              "--test-speech", str(timit / "dr6-fapb0"), "--noise", "babble", "--jobs", "0",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2 and "jobs must be an integer >= 1" in res.output


def test_missing_pesq_is_null_and_counted(tmp_path):
    from deepnmf.experiments.enhancement import _row
    from deepnmf.experiments.enhancement_report import markdown_table, write_outputs

    nan = float("nan")
    scores = [{"sdr": 1.0, "sir": 2.0, "sar": 3.0, "pesq": nan, "pesq_wb": nan, "stoi": 0.5},
              {"sdr": 3.0, "sir": 4.0, "sar": 5.0, "pesq": 2.0, "pesq_wb": nan, "stoi": 0.7}]
    row = _row("nmf+mu", "factory2", 5.0, scores)
    assert row["sdr"] == 2.0 and row["pesq"] == 2.0 and row["pesq_wb"] is None and row["pesq_missing"] == 1
    assert row["stoi"] == pytest.approx(0.6)
    rows = [row, {**row, "method": "noisy", "pesq": None}]
    assert "| noisy | n/a | n/a |" in markdown_table(rows, "pesq")
    # the noisy input's SAR (BSS Eval's ceiling) is not shown in the tables, only kept in the JSON
    assert "| noisy | – | – |" in markdown_table(rows, "sar") and "| nmf+mu | 4.00 [3.00, 5.00] |" in markdown_table(rows, "sar")
    write_outputs(tmp_path, rows, {}, pooled=False)
    assert json.loads((tmp_path / "results.json").read_text())[1]["pesq"] is None
    assert json.loads((tmp_path / "results.json").read_text())[1]["sar"] == 4.0
