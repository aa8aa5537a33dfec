"""The built-in demo: the three systems end to end, then one report to look at and listen to.

1. **enhancement**: NMF and VAE-NMF speech and noise dictionaries, each with
   multiplicative updates and with an activation network trained as the
   enhancement experiment trains it (:data:`~deepnmf.pipelines.network_training.RECOMMENDED`),
   enhanced audio, SDR/SIR/SAR/PESQ/STOI of each method beside the noisy input;
2. **separation**: a two-speaker 0 dB mixture separated with iN-NMF
   dictionaries learned once at one STFT size and used at others, beside NMF
   refitted at each size;
3. **synergies**: EMG with known synergies, NMF and VAE-NMF, VAF (total,
   per channel, held out) and the VAF-vs-rank curve.

The data are generated (:func:`deepnmf.datasets.synthetic.speech_like`,
:func:`~deepnmf.datasets.synthetic.noise_signal`,
:func:`deepnmf.datasets.synthetic_emg.make_synthetic_emg`), or, with
``data="real"`` (or ``"auto"`` when ``DEEPNMF_DATA`` / ``../shared/data`` is
there), the real recordings (:mod:`deepnmf.pipelines._demo_data`). Each job writes a
folder with a ``section.json``; :func:`deepnmf.report.build_report` turns the
whole output into ``report.html`` and ``report.md``.

Orientation: spectrograms are ``(n_frames, n_bins)``, dictionaries
``(n_components, n_bins)``, EMG envelopes ``(n_samples, n_channels)``.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.exceptions import ParameterError
from deepnmf.pipelines._common import send_notice, write_json
from deepnmf.pipelines.enhancement import DEFAULT_EXPONENTS, DEFAULT_GAINS
from deepnmf.pipelines.network_training import RECOMMENDED, RECOMMENDED_OBJECTIVE, NetworkTraining

SR = 16000
DATA_CHOICES = ("auto", "synthetic", "real")
#: gain settings per activation method (those of ``deepnmf experiment enhancement``)
_GAIN = {k: {"power": DEFAULT_GAINS[k][0], "floor": DEFAULT_GAINS[k][1], "exponent": DEFAULT_EXPONENTS[k]}
         for k in ("mu", "dnn")}


def _slug(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name.lower()).split()
    return "-".join(words)


def write_section(folder: Path, **spec: Any) -> dict:
    """Write ``section.json`` (what the report shows of a job) and return it."""
    write_json(folder / "section.json", spec)
    return spec


def _magnitudes(signals: list[np.ndarray]) -> np.ndarray:
    """Stacked ``|STFT|`` frames ``(n_frames, 257)`` of signals, with the enhancer's front end."""
    from deepnmf.pipelines.enhancement import STFTSettings

    return np.concatenate([STFTSettings().stft(x).abs().numpy() for x in signals]).astype(np.float64)


# ------------------------------------------------------------ enhancement
def _enhancement_models(speech, noise, cfg: dict, seed: int, callback: Callback | None) -> dict[str, Any]:
    """NMF and VAE-NMF speech and noise dictionaries (KL / Poisson on ``|STFT|``)."""
    from deepnmf.models.factory import make_estimator

    V = {"speech": _magnitudes(speech), "noise": _magnitudes(noise)}
    models = {}
    for kind in ("nmf", "vae-nmf"):
        for src in ("speech", "noise"):
            rank = cfg["speech_rank"] if src == "speech" else cfg["noise_rank"]
            if kind == "nmf":
                est = make_estimator("nmf", rank, beta_loss="kullback-leibler", max_iter=cfg["nmf_iter"],
                                     tol=1e-5, random_state=seed)
            else:
                est = make_estimator("vae-nmf", rank, likelihood="poisson", hidden=(64, 64),
                                     max_epochs=cfg["vae_epochs"], random_state=seed)
            est.fit(V[src].astype(np.float32 if kind == "vae-nmf" else np.float64),
                    callback=stage_reporter(callback, f"enhancement: {kind} {src} dictionary"))
            models[f"{kind} {src}"] = est
    return models


def _network_training(cfg: dict) -> NetworkTraining:
    """The experiment's recipe (:data:`RECOMMENDED`) with the demo's mixtures per utterance and epochs."""
    return NetworkTraining.of(RECOMMENDED, {"n_copies": cfg["dnn_copies"], "epochs": cfg["dnn_epochs"]})


def _enhancers(models, speech, noise, cfg: dict, seed: int, callback: Callback | None) -> dict[str, Any]:
    """The methods compared: each dictionary with multiplicative updates and with its activation network
    (signal approximation through the frozen dictionaries, as the enhancement experiment trains it)."""
    from deepnmf.pipelines.enhancement import Enhancer

    kinds = (("nmf", "NMF"), ("vae-nmf", "VAE-NMF"))
    out = {f"{label} + MU": Enhancer(models[f"{kind} speech"], models[f"{kind} noise"], activations="mu",
                                     **_GAIN["mu"]) for kind, label in kinds}
    for kind, label in kinds:
        dnn = Enhancer(models[f"{kind} speech"], models[f"{kind} noise"], activations="mu", **_GAIN["dnn"])
        dnn.fit_network(speech, noise, objective=RECOMMENDED_OBJECTIVE, training=_network_training(cfg),
                        random_state=seed, callback=stage_reporter(callback, f"enhancement: {kind} activation network"))
        out[f"{label} + DNN"] = dnn
    return out


def _score_rows(enhancers: dict, tests: list, folder: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Scores of the noisy input and of every method on every test mixture; the first mixture's signals."""
    from deepnmf.audio.mixing import mix_at_snr
    from deepnmf.metrics import enhancement_scores as score  # the experiment's one scoring rule

    rows, listen = [], {}
    for i, (name, clean, noise) in enumerate(tests):
        y, s, n = mix_at_snr(clean, noise, 0.0, peak=None)
        estimates = {"noisy": y, **{m: enh.enhance(y) for m, enh in enhancers.items()}}
        rows += [{"method": m, "mixture": name, **score(s, n, est, SR)} for m, est in estimates.items()]
        if i == 0:
            listen = {"clean": s, **estimates}
    return rows, listen


#: decimals of each metric in the demo's tables (dB to 0.01, PESQ to 0.01, STOI to 0.001)
_FORMATS = {"sdr": ".2f", "sir": ".2f", "sar": ".2f", "pesq": ".2f", "stoi": ".3f"}


def _mean_table(rows: list[dict], keys: tuple[str, ...], caption: str) -> dict:
    """One row per method: the mean of each metric over the test mixtures. The noisy input's SAR is left
    empty: the mixture has no artefacts, and BSS Eval's figure there (about 150 dB, or inf) is its
    numerical ceiling, not a measurement."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    body = [[m] + [None if (m, k) == ("noisy", "sar") else float(np.nanmean([r[k] for r in rows if r["method"] == m]))
                   for k in keys] for m in methods]
    return {"caption": caption, "columns": ["method"] + [k.upper().replace("_", " ") for k in keys], "rows": body,
            "formats": [None] + [_FORMATS.get(k) for k in keys]}


def _write_listening(folder: Path, listen: dict[str, np.ndarray], scale: float = 0.95) -> list[dict]:
    """WAV files of the signals to listen to (one common gain, so loudness compares)."""
    from deepnmf.audio.io import save_audio

    peak = max(float(np.max(np.abs(x))) for x in listen.values())
    audio = []
    for name, x in listen.items():
        path = save_audio(folder / f"{_slug(name)}.wav", np.asarray(x) * scale / peak, SR)
        audio.append({"file": path.name, "label": name})
    return audio


def enhancement_job(out: Path, data: dict, *, seed: int, cfg: dict, callback: Callback | None = None) -> dict:
    """Train the dictionaries and the activation network, enhance the test mixtures, score and draw them."""
    from deepnmf.plotting.report import plot_dictionaries, plot_spectrograms

    t0 = time.perf_counter()
    models = _enhancement_models(data["train_speech"], data["train_noise"], cfg, seed, callback)
    enhancers = _enhancers(models, data["train_speech"], data["train_noise"], cfg, seed, callback)
    rows, listen = _score_rows(enhancers, data["tests"], out)
    audio = _write_listening(out, listen)
    plot_spectrograms(listen, SR, out / "spectrograms.png", title=f"{data['tests'][0][0]} at 0 dB")
    plot_dictionaries({k: m.components_ for k, m in models.items()}, out / "dictionaries.png",
                      freqs=np.linspace(0, SR / 2, 257), title="learned dictionaries (atoms normalised)")
    write_json(out / "scores.json", rows)
    saved = {"NMF + MU": "nmf-mu", "NMF + DNN": "nmf-dnn", "VAE-NMF + DNN": "vae-nmf-dnn"}
    for method, folder in saved.items():
        enhancers[method].save(out / "models" / folder)
    table = _mean_table(rows, ("sdr", "sir", "sar", "pesq", "stoi"),
                        f"Speech enhancement at 0 dB input SNR, mean over {len(data['tests'])} test mixtures (dB; PESQ narrow-band MOS; STOI 0-1)")
    what = (f"{data['what']} Speech and noise dictionaries are learned with NMF (KL, rank {cfg['speech_rank']}/"
            f"{cfg['noise_rank']}) and VAE-NMF (Gamma latents, Poisson likelihood); the test mixtures' activations "
            "come from multiplicative updates with the stacked dictionaries frozen (MU) or from an activation network "
            "per dictionary pair (DNN), trained on generated mixtures as the enhancement experiment trains it: signal "
            "approximation through the frozen dictionaries, noise-aware input, the gain squared at enhancement time; "
            "a Wiener-like gain gives the enhanced speech.")
    return write_section(out, title="Speech enhancement", what=what, tables=[table], audio=audio,
                         figures=[{"file": "spectrograms.png", "caption": "clean, noisy and enhanced spectrograms"},
                                  {"file": "dictionaries.png", "caption": "the learned speech and noise dictionaries"}],
                         settings={"seed": seed, **cfg, "gain": _GAIN, "network": _network_settings(cfg),
                                   "sr": SR, "stft": "512 Hamming, hop 128",
                                   "seconds": round(time.perf_counter() - t0, 1)},
                         models=[f"enhancement/models/{folder}" for folder in saved.values()])


def _network_settings(cfg: dict) -> dict[str, Any]:
    """The activation networks' objective and training settings, for the report's settings table."""
    return {"objective": RECOMMENDED_OBJECTIVE, **asdict(_network_training(cfg))}


# ------------------------------------------------------------- separation
def _separation_scores(refs: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """Mean SDR/SIR/SAR over the sources (in order)."""
    from deepnmf import metrics

    bss = metrics.bss_eval(refs, est)
    return {k: float(np.mean(bss[k])) for k in ("sdr", "sir", "sar")}


def _implicit_models(examples, cfg: dict, seed: int, callback: Callback | None) -> list[Any]:
    from deepnmf.pipelines.separation import learn_source_model

    return [learn_source_model(ex, sr=SR, model="implicit", n_fft=cfg["train_n_fft"], rank=cfg["rank"],
                               max_epochs=cfg["epochs"], random_state=seed + i,
                               callback=stage_reporter(callback, f"separation: iN-NMF source {i}"))
            for i, ex in enumerate(examples, start=1)]


def _separate_all_sizes(mix, refs, examples, implicit, cfg: dict, seed: int, callback):
    """iN-NMF (trained once) and NMF (refitted) at every size: score rows and the estimates."""
    from deepnmf.pipelines.separation import learn_source_model, separate

    rows, estimates = [], {}
    for n_fft in cfg["sizes"]:
        nmf = [learn_source_model(ex, sr=SR, model="nmf", n_fft=n_fft, rank=cfg["rank"], max_iter=cfg["nmf_iter"],
                                  random_state=seed + i, callback=stage_reporter(callback, f"separation: NMF at {n_fft}"))
               for i, ex in enumerate(examples, start=1)]
        for method, models in ((f"iN-NMF (trained at {cfg['train_n_fft']})", implicit), ("NMF (refitted)", nmf)):
            est = separate(mix, models, sr=SR, n_fft=n_fft)
            estimates[(method, n_fft)] = est
            rows.append({"method": method, "n_fft": n_fft, **_separation_scores(refs, est)})
    return rows, estimates


def _size_table(rows: list[dict], sizes: list[int]) -> dict:
    """The paper's layout: one row per method, the SDR at each STFT size."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    body = [[m] + [next(r["sdr"] for r in rows if r["method"] == m and r["n_fft"] == n) for n in sizes] for m in methods]
    return {"caption": "Two-source separation of a 0 dB mixture: mean SDR (dB) of the two sources at each STFT size",
            "columns": ["method"] + [f"SDR at {n}" for n in sizes], "rows": body, "formats": [None] + [".2f"] * len(sizes)}


def separation_job(out: Path, data: dict, *, seed: int, cfg: dict, callback: Callback | None = None) -> dict:
    """Learn iN-NMF once and NMF at each size from example recordings; separate a 0 dB mixture; score, draw."""
    from deepnmf.plotting.report import plot_dictionaries, plot_spectrograms

    t0 = time.perf_counter()
    a, b = (np.asarray(x, dtype=np.float64) for x in data["tests"])
    b = b * np.sqrt(np.sum(a ** 2) / np.sum(b ** 2))  # 0 dB
    refs, mix = np.stack([a, b]), a + b
    implicit = _implicit_models(data["examples"], cfg, seed, callback)
    rows, estimates = _separate_all_sizes(mix, refs, data["examples"], implicit, cfg, seed, callback)
    show = max(n for n in cfg["sizes"] if n != cfg["train_n_fft"])
    inn = next(k for k in estimates if k[0].startswith("iN-NMF") and k[1] == show)
    nmf = ("NMF (refitted)", show)
    names = data["names"]
    listen = {"mixture": mix, f"true {names[0]}": a, f"true {names[1]}": b,
              **{f"{inn[0]} at {show}: {names[i]}": estimates[inn][i] for i in range(2)},
              **{f"NMF refitted at {show}: {names[i]}": estimates[nmf][i] for i in range(2)}}
    audio = _write_listening(out, listen)
    plot_spectrograms({k: v for k, v in listen.items() if "NMF refitted" not in k}, SR, out / "spectrograms.png",
                      n_fft=1024, hop=256, title=f"iN-NMF dictionaries learned at {cfg['train_n_fft']}, used at {show}")
    from deepnmf.pipelines.separation import atoms_at

    sizes = sorted({min(cfg["sizes"]), show})
    dicts = {f"iN-NMF {names[0]} at {n}": atoms_at(implicit[0], n_fft=n, sr=SR).numpy() for n in sizes}
    plot_dictionaries(dicts, out / "dictionaries.png",
                      freqs={k: np.linspace(0, SR / 2, n // 2 + 1) for k, n in zip(dicts, sizes)},
                      title="one iN-NMF dictionary sampled at two STFT sizes")
    for i, model in enumerate(implicit, start=1):
        model.save(out / "models" / f"implicit-source-{i}")
    write_json(out / "scores.json", rows)
    detail = {"caption": "Every score (mean over the two sources)", "columns": ["method", "n_fft", "SDR", "SIR", "SAR"],
              "rows": [[r["method"], r["n_fft"], r["sdr"], r["sir"], r["sar"]] for r in rows],
              "formats": [None, None, ".2f", ".2f", ".2f"]}
    what = (f"{data['what']} Each source's dictionary is learned from an example recording: iN-NMF (rank {cfg['rank']}, "
            f"{cfg['epochs']} Rprop epochs) once at STFT size {cfg['train_n_fft']}, then sampled at the bins of every "
            "other size; NMF (KL) is refitted at each size. The mixture's activations are fitted with the dictionaries "
            "frozen and Wiener masks separate it (magnitude exponent 0.5, sqrt-Hann, hop n_fft/2).")
    return write_section(out, title="Source separation across STFT sizes", what=what,
                         tables=[_size_table(rows, cfg["sizes"]), detail], audio=audio,
                         figures=[{"file": "spectrograms.png", "caption": "mixture, true and separated sources"},
                                  {"file": "dictionaries.png", "caption": "an iN-NMF dictionary at two sizes"}],
                         settings={"seed": seed, **cfg, "sr": SR, "seconds": round(time.perf_counter() - t0, 1)},
                         models=[f"separation/models/implicit-source-{i}" for i in (1, 2)])


# --------------------------------------------------------------- synergies
def _synergy_rows(runs: dict, truth: np.ndarray | None) -> list[list[Any]]:
    """One row per method: VAF, lowest per-channel VAF, mean held-out VAF, (cosine to the planted synergies)."""
    from deepnmf.matching import match_components

    rows = []
    for method, run in runs.items():
        m = run.study.movements[0]
        held = float(np.mean(m.heldout.vaf)) if m.heldout is not None else float("nan")
        row = [method, float(m.fit.vaf), float(np.min(m.fit.vaf_per_channel)), held]
        if truth is not None:
            row.append(float(np.mean(match_components(truth, m.fit.synergies)[1])))
        rows.append(row)
    return rows


def _synergy_runs(data: dict, cfg: dict, seed: int, callback: Callback | None) -> dict[str, Any]:
    from deepnmf.pipelines.synergies import SynergyRun, estimator_overrides, run_synergy_study

    env, runs = data["envelopes"], {}
    for method in ("nmf", "vae-nmf"):
        study = run_synergy_study(
            env, rank=cfg["rank"], method=method, movements=data["movements"],
            n_restarts=cfg["restarts"][method], cv_restarts=1,
            curve_ranks=list(range(1, env.n_channels + 1)) if method == "nmf" else [],
            estimator_params=estimator_overrides(method, cfg["vae_epochs"]), random_state=seed,
            callback=stage_reporter(callback, f"synergies: {method}"))
        runs[method] = SynergyRun(data["files"], data["format"], data["recording"], env, study)
    return runs


def synergies_job(out: Path, data: dict, *, seed: int, cfg: dict, callback: Callback | None = None) -> dict:
    """NMF and VAE-NMF synergies of one movement: VAF (total, per channel, held out), the rank curve, figures."""
    from deepnmf.pipelines.synergies import write_synergy_outputs

    t0 = time.perf_counter()
    runs = _synergy_runs(data, cfg, seed, callback)
    for method, run in runs.items():
        write_synergy_outputs(run, out / method)
    tag = f"movement-{runs['nmf'].study.movements[0].movement}"
    columns = ["method", "VAF", "lowest channel VAF", "held-out VAF (mean)"]
    truth = data.get("truth")
    if truth is not None:
        columns.append("cosine to planted synergies")
    table = {"caption": f"Muscle synergies, rank {cfg['rank']}: variance accounted for (leave-one-repetition-out for held out)",
             "columns": columns, "rows": _synergy_rows(runs, truth)}
    curve = runs["nmf"].study.movements[0].curve
    curve_table = {"caption": "VAF against rank (NMF)", "columns": ["rank", "VAF"],
                   "rows": [[r, v] for r, v in sorted(curve.items())]}
    figures = [{"file": f"{m}/figures/{tag}_{kind}.png", "caption": f"{m}: {text}"}
               for m in ("nmf", "vae-nmf") for kind, text in
               (("synergies", "synergy vectors"), ("reconstruction", "envelopes, reconstruction and per-channel VAF"))]
    figures += [{"file": "nmf/figures/vaf_curve.png", "caption": "VAF against rank (the rank curve)"},
                {"file": f"nmf/figures/{tag}_activations.png", "caption": "nmf: activations"}]
    what = (f"{data['what']} Envelopes: band-pass, rectification, low-pass, per-channel normalisation. Synergies of "
            f"rank {cfg['rank']} by NMF and VAE-NMF; held-out VAF leaves one repetition out.")
    return write_section(out, title="Muscle synergies", what=what, tables=[table, curve_table], figures=figures,
                         settings={"seed": seed, **cfg, "seconds": round(time.perf_counter() - t0, 1),
                                   "preprocessing": runs["nmf"].study.preprocessing})


# ------------------------------------------------------------------ the demo
#: settings of each job (``quick=True``: the smaller ones, for tests)
CONFIGS = {
    False: {"enhancement": {"speech_rank": 24, "noise_rank": 12, "nmf_iter": 200, "vae_epochs": 40,
                            "dnn_epochs": RECOMMENDED.epochs, "dnn_copies": RECOMMENDED.n_copies},
            "separation": {"rank": 12, "train_n_fft": 1024, "sizes": [512, 1024, 2048], "epochs": 300, "nmf_iter": 200},
            "synergies": {"rank": 4, "restarts": {"nmf": 3, "vae-nmf": 1}, "vae_epochs": 150}},
    True: {"enhancement": {"speech_rank": 8, "noise_rank": 4, "nmf_iter": 40, "vae_epochs": 3,
                           "dnn_epochs": 1, "dnn_copies": 2},
           "separation": {"rank": 4, "train_n_fft": 512, "sizes": [256, 512], "epochs": 20, "nmf_iter": 30},
           "synergies": {"rank": 4, "restarts": {"nmf": 1, "vae-nmf": 1}, "vae_epochs": 5}},
}
JOBS = {"enhancement": enhancement_job, "separation": separation_job, "synergies": synergies_job}


def run_demo(out: str | Path, *, seed: int = 0, data: str = "auto", jobs: tuple[str, ...] = tuple(JOBS),
             quick: bool = False, callback: Callback | None = None) -> dict:
    """Run the three systems end to end and write ``report.html`` / ``report.md`` in ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder: ``enhancement/``, ``separation/``, ``synergies/`` (each
        with ``section.json``, WAV files, figures and model folders),
        ``summary.json``, ``report.html`` and ``report.md``.
    seed : int
        Seed of the generated data and of every model.
    data : {"auto", "synthetic", "real"}
        ``"auto"`` uses the real recordings when ``DEEPNMF_DATA`` (or
        ``../shared/data``) is there, else generated data; ``"real"`` fails
        without them.
    jobs : tuple of str
        A subset of ``("enhancement", "separation", "synergies")``.
    quick : bool
        Much smaller models and data (seconds; for tests).
    callback : callable, optional
        Receives every training's :class:`~deepnmf.callbacks.EpochInfo`
        (``stage`` names the job and the model) and a notice per job.

    Returns
    -------
    summary : dict
        What ``summary.json`` holds: the data used, seed, settings, seconds
        (wall and CPU) per job, versions and the report's files.
    """
    from deepnmf.report import build_report, environment_info
    from deepnmf.pipelines._demo_data import demo_data

    if data not in DATA_CHOICES:
        raise ParameterError(f"data must be one of {', '.join(DATA_CHOICES)}, got {data!r}")
    unknown = [j for j in jobs if j not in JOBS]
    if unknown or not jobs:
        raise ParameterError(f"jobs must be among {', '.join(JOBS)}, got {list(jobs)}")
    out = Path(out)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    kind, inputs = demo_data(data, seed, quick)
    send_notice(callback, f"demo on {kind} data ({'quick' if quick else 'full'} settings), writing {out}")
    timings = {}
    for job in jobs:
        send_notice(callback, f"{job}: {inputs[job]['what']}")
        t0, c0 = time.perf_counter(), time.process_time()
        folder = out / job
        folder.mkdir(parents=True, exist_ok=True)
        JOBS[job](folder, inputs[job], seed=seed, cfg=CONFIGS[quick][job], callback=callback)
        timings[job] = {"wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}
    summary = {"data": kind, "seed": seed, "quick": quick, "jobs": list(jobs), "settings": {j: CONFIGS[quick][j] for j in jobs},
               "timings": timings, "wall_seconds": round(time.perf_counter() - wall0, 1),
               "cpu_seconds": round(time.process_time() - cpu0, 1), "environment": environment_info()}
    write_json(out / "summary.json", summary)
    files = build_report(out, title=f"deepnmf demo ({kind} data)")
    summary["report"] = {"html": str(files.html), "markdown": str(files.markdown)}
    write_json(out / "summary.json", summary)
    return summary
