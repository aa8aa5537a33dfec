"""VAE-NMF dictionaries for enhancement: which configuration, chosen on validation data only.

Protocol (training side of the enhancement experiment only; the test speakers
``dr6-*`` are never read):

- speech: TIMIT sample, training speakers ``dr1-*``..``dr4-*`` (8) for the
  dictionaries and networks, validation speakers ``dr5-*`` (2) for the
  validation mixtures (10 utterances, round robin) and the held-out ELBO
  (every frame of their 20 utterances);
- noises: ``noisex-excerpts/factory2.wav`` and babble constructed from 6
  training speakers, as the experiment makes it. Only the *training part* of
  each noise as the experiment splits it (``split_excerpt``: first 9000 frames,
  at most 70 %) is used: its first 60 % trains the noise dictionary and the
  activation network, its last 40 % gives the validation mixtures' noise;
- speech dictionary rank 40 on 10000 random frames of the training speakers,
  noise dictionary rank 40 on the noise part; STFT, gains and the activation
  network's settings are the experiment's (``DEFAULT_GAINS``, ``dnn_*``);
- per configuration: average SDR (BSS Eval, speech and noise references) of
  ``+mu`` and ``+dnn`` over 10 utterances x SNR -5/0/5/10 dB x 2 noises, the
  held-out ELBO per frame of the speech model (``VAENMF.score``; comparable
  only within one likelihood), the held-out KL fit of the speech dictionary
  (generalised KL per element of the validation frames against the frozen
  dictionary, 200 multiplicative updates: comparable across models), and the
  seconds the three dictionaries took to train.

Results are merged into ``benchmarks/results/vae_dictionary_study.json``
(one entry per configuration, with the command). Models are cached in
``--cache`` so that a rerun only scores.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/vae_dictionary_study.py --configs nmf,gauss-e30 [--no-dnn]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "vae_dictionary_study.json"
SNRS = (-5.0, 0.0, 5.0, 10.0)
VAL_SHARE = 0.4  # share of each noise's training part kept for validation mixtures

NMF_SPEC = {"kind": "nmf", "params": {"beta_loss": "kullback-leibler", "max_iter": 200}}
LIKELIHOODS = {"gauss": "gaussian", "poisson": "poisson", "expo": "exponential"}
#: name tokens after the likelihood: VAENMF parameter (and how the token's number is read)
TOKENS = {"e": ("max_epochs", int), "a": ("prior_shape", float), "lr": ("lr", float), "wd": ("weight_decay", float),
          "b": ("batch_size", int), "p": ("patience", int), "vf": ("validation_fraction", float)}


def parse_config(name: str) -> dict:
    """``"nmf"``, or ``LIK[-TOKEN]...`` with LIK gauss/poisson/expo and tokens ``eN`` (epochs, default 30),
    ``aX`` (prior shape), ``lrX``, ``wdX`` (weight decay), ``bN`` (batch), ``esN`` (early stopping on the
    validation loss, at most N epochs, patience ``pN``, default 5), ``vfX`` (validation fraction) and ``enc``
    (the activation network learns the encoders' posterior means instead of refitted activations), ``eqs``
    (each noise dictionary trains for as many gradient steps as the speech one: epochs times the ratio of frames),
    ``kwN`` (``kl_warmup=N``: the KL weight rises from 0 to 1 over N epochs), ``seedN`` (another seed of the
    dictionaries; the network's is unchanged):
    e.g. ``poisson-a0.5-e60``, ``gauss-es60-p5``, ``poisson-e30-enc``, ``poisson-kw10-seed1``."""
    if name == "nmf":
        return NMF_SPEC
    lik, *tokens = name.split("-")
    if lik not in LIKELIHOODS:
        raise ValueError(f"{name}: starts with nmf, gauss, poisson or expo")
    spec = {"kind": "vae-nmf", "params": {"likelihood": LIKELIHOODS[lik], "max_epochs": 30, "early_stopping": False}}
    for token in tokens:
        if token == "enc":
            spec["targets"] = "encoder"
        elif token.startswith("seed"):  # another seed of the dictionaries (the network's stays)
            spec["seed"] = int(token[4:])
        elif token.startswith("kw"):  # KL warm-up: the KL weight rises linearly from 0 to 1 over N epochs
            spec["params"]["kl_warmup"] = int(token[2:])
        elif token == "eqs":  # noise dictionaries: as many gradient steps as the speech dictionary
            spec["equal_steps"] = True
        elif token.startswith("es"):
            spec["params"].update(max_epochs=int(token[2:]), early_stopping=True)
            spec["params"].setdefault("patience", 5)
        else:
            key = next((k for k in sorted(TOKENS, key=len, reverse=True) if token.startswith(k)), None)
            if key is None:
                raise ValueError(f"{name}: unknown token {token!r}")
            param, kind = TOKENS[key]
            spec["params"][param] = kind(token[len(key):])
    return spec


# ------------------------------------------------------------------ data
def load_data(root: Path):
    """The experiment's corpus with dr1-4 as training and dr5 as "test" (= validation) speakers,
    each noise's training part split into a dictionary part and a validation part."""
    from deepnmf.experiments.enhancement import Corpus, EnhancementConfig, load_corpus

    timit = root / "speech" / "timit-sample"
    cfg = EnhancementConfig(train_speech=sorted(timit.glob("dr[1-4]-*")), test_speech=sorted(timit.glob("dr5-*")),
                            noises=[root / "noise" / "noisex-excerpts" / "factory2.wav", "babble"], out="unused",
                            n_test=10)
    corpus = load_corpus(cfg)  # corpus.noises[name] = (training part, test part): the test part is never used here
    longest = max(x.size for _, x in corpus.test)
    noises = {}
    for name, (train_part, _) in corpus.noises.items():
        cut = int(round(train_part.size * (1 - VAL_SHARE)))
        if train_part.size - cut <= longest:
            raise SystemExit(f"{name}: validation part shorter than the longest validation utterance")
        noises[name] = (train_part[:cut], train_part[cut:])
    held_out = _held_out_frames(sorted(timit.glob("dr5-*")), cfg.sr)
    return Corpus(train=corpus.train, test=corpus.test, noises=noises), cfg, held_out


def _held_out_frames(folders, sr: int) -> np.ndarray:
    """Magnitude frames of every utterance of the validation speakers ``(n, n_bins)``."""
    from deepnmf.audio.io import list_audio_files, load_audio
    from deepnmf.experiments.enhancement import _magnitudes

    signals = [load_audio(f, sr=sr, dtype=np.float64)[0] for f in list_audio_files(*folders)]
    return torch.cat(_magnitudes(signals)).numpy()


# ---------------------------------------------------------------- models
def fit_dictionary(spec: dict, V: np.ndarray, seed: int, n_speech_frames: int):
    from deepnmf.models.factory import make_estimator

    params = dict(spec["params"])
    if spec.get("equal_steps") and V.shape[0] < n_speech_frames:
        params["max_epochs"] = int(np.ceil(params["max_epochs"] * n_speech_frames / V.shape[0]))
    return make_estimator(spec["kind"], 40, random_state=seed, **params).fit(V)


def dictionaries(name: str, spec: dict, corpus, cfg, cache: Path):
    """Speech and per-noise models of a configuration (cached), and the seconds they took."""
    from deepnmf.experiments.enhancement import noise_frames, speech_frames
    from deepnmf.io.model_files import load_model

    key = "+".join(f"{k}={v}" for k, v in sorted(spec["params"].items())) + ("+eqs" if spec.get("equal_steps") else "")
    key += f"+seed{spec['seed']}" if spec.get("seed") else ""
    folder = cache / f"{spec['kind']}-{key}"
    seed = cfg.random_state + 10 * spec.get("seed", 0)
    jobs = {"speech": (lambda: speech_frames(corpus, cfg), seed)}
    jobs.update({n: (lambda n=n: noise_frames(corpus, cfg, [n]), seed + 1) for n in corpus.noises})
    models, seconds = {}, {}
    for part, (frames, seed) in jobs.items():
        path = folder / part
        if (path / "seconds.json").is_file():
            models[part] = load_model(path)
            seconds[part] = json.loads((path / "seconds.json").read_text())["seconds"]
            continue
        t0 = time.perf_counter()
        models[part] = fit_dictionary(spec, frames(), seed, cfg.speech_frames)
        seconds[part] = time.perf_counter() - t0
        models[part].save(path)
        (path / "seconds.json").write_text(json.dumps({"seconds": seconds[part]}))
        print(f"  {name}: {part} dictionary {seconds[part]:.0f} s", flush=True)
    return models, seconds


def encoder_target_enhancer():
    """An Enhancer whose network learns the VAE encoders' posterior means instead of refitted activations."""
    from deepnmf.pipelines.enhancement import Enhancer

    class EncoderTargets(Enhancer):
        def targets(self, speech_mag: torch.Tensor, noise_mag: torch.Tensor) -> torch.Tensor:
            W_s = torch.as_tensor(self.speech_model.transform(speech_mag.float().numpy()))
            W_n = torch.as_tensor(self.noise_model.transform(noise_mag.float().numpy()))
            return torch.cat([W_s, W_n], dim=1).float()

    return EncoderTargets


def network_settings(cfg) -> dict:
    """The experiment's extra activation-network settings (objective, recurrent layers...), as it passes them."""
    from deepnmf.experiments import enhancement

    return enhancement._network_recipe(cfg, "dnn") if hasattr(enhancement, "_network_recipe") else {}


def enhancers(spec: dict, models: dict, corpus, cfg, with_dnn: bool):
    """``{(method, noise): enhancer}`` for ``+mu`` and (when asked) ``+dnn``."""
    from deepnmf.experiments.enhancement import DEFAULT_GAINS, network_training
    from deepnmf.pipelines.enhancement import Enhancer

    out = {}
    for noise, (train_part, _) in corpus.noises.items():
        out[("mu", noise)] = Enhancer(models["speech"], models[noise], activations="mu", power=DEFAULT_GAINS["mu"][0],
                                      floor=DEFAULT_GAINS["mu"][1], max_iter=cfg.nmf_iter)
        if not with_dnn:
            continue
        cls = encoder_target_enhancer() if spec.get("targets") == "encoder" else Enhancer
        enh = cls(models["speech"], models[noise], activations="dnn", power=DEFAULT_GAINS["dnn"][0],
                  floor=DEFAULT_GAINS["dnn"][1], max_iter=cfg.nmf_iter)
        speech = [x for utts in corpus.train.values() for x in utts]
        enh.fit_network(speech, [train_part], objective=cfg.dnn_objective, training=network_training(cfg, "dnn"),
                        snr_range=(min(SNRS), max(SNRS)), random_state=cfg.random_state)
        out[("dnn", noise)] = enh
    return out


# ------------------------------------------------------------ evaluation
def validation_sdr(enh: dict, corpus) -> dict[str, float]:
    """Average SDR per method over every (noise, utterance, SNR) validation mixture."""
    from deepnmf.audio.mixing import mix_at_snr, noise_excerpt
    from deepnmf.metrics import bss_eval

    sdr: dict[str, list[float]] = {}
    for i, (noise, (_, val_part)) in enumerate(corpus.noises.items()):
        for j, (_, clean) in enumerate(corpus.test):
            excerpt = noise_excerpt(val_part, clean.size, random_state=100 * i + j)
            for snr in SNRS:
                y, s, n = mix_at_snr(clean, excerpt, snr)
                for method in ("noisy", *sorted({m for m, nz in enh if nz == noise})):
                    est = y if method == "noisy" else enh[(method, noise)].enhance(y)
                    bss = bss_eval(np.stack([s, n]), np.stack([est, n]))
                    sdr.setdefault(method, []).append(float(bss["sdr"][0]))
                    sdr.setdefault(f"{method}/{noise}", []).append(float(bss["sdr"][0]))
    return {k: float(np.mean(v)) for k, v in sdr.items()}


def _magnitudes_of(x: np.ndarray) -> np.ndarray:
    from deepnmf.experiments.enhancement import _magnitudes

    return _magnitudes([x])[0].numpy()


def held_out_fit(model, held_out: np.ndarray) -> dict[str, float]:
    """Held-out ELBO per frame (VAE only) and generalised KL per element against the frozen dictionary."""
    from deepnmf.divergences import beta_divergence
    from deepnmf.pipelines.enhancement import frozen_activations

    H = torch.as_tensor(model.components_, dtype=torch.float64)
    X = torch.as_tensor(held_out, dtype=torch.float64)
    W = frozen_activations(X, H, max_iter=200)
    out = {"val_kl_per_element": float(beta_divergence(X, W @ H, 1.0)) / X.numel()}
    if hasattr(model, "score_samples"):
        out["val_elbo_per_frame"] = float(model.score(held_out.astype(np.float32)))
        out["epochs_run"] = int(model.n_iter_)
        out["best_epoch"] = int(model.best_epoch_)
        out["dispersion"] = float(model.dispersion_)
    return out


def run_config(name: str, corpus, cfg, held_out, cache: Path, with_dnn: bool) -> dict:
    spec = parse_config(name)
    t0 = time.perf_counter()
    models, seconds = dictionaries(name, spec, corpus, cfg, cache)
    enh = enhancers(spec, models, corpus, cfg, with_dnn)
    t1 = time.perf_counter()
    sdr = validation_sdr(enh, corpus)
    noise_fit = {n: held_out_fit(models[n], _magnitudes_of(val_part))["val_kl_per_element"]
                 for n, (_, val_part) in corpus.noises.items()}
    entry = {"spec": spec, "train_seconds": seconds, "train_seconds_total": sum(seconds.values()),
             "network_seconds": t1 - t0 - sum(seconds.values()) if with_dnn else None,
             "score_seconds": time.perf_counter() - t1, "sdr": sdr,
             "network": {"epochs": cfg.dnn_epochs, "copies": cfg.dnn_copies, "context": cfg.dnn_context,
                         "hidden": list(cfg.dnn_hidden), **network_settings(cfg)} if with_dnn else None, **held_out_fit(models["speech"], held_out),
             "noise_val_kl_per_element": noise_fit,
             "noise_epochs_run": {n: getattr(models[n], "n_iter_", None) for n in corpus.noises}}
    print(f"{name}: +mu {sdr['mu']:.2f}" + (f" +dnn {sdr['dnn']:.2f}" if with_dnn else "") +
          f" (noisy {sdr['noisy']:.2f}) KL {entry['val_kl_per_element']:.4f} "
          f"ELBO {entry.get('val_elbo_per_frame', float('nan')):.1f} noise KL "
          f"{[round(v, 4) for v in noise_fit.values()]} dict {entry['train_seconds_total']:.0f} s", flush=True)
    return entry


def _save(name: str, entry: dict, with_dnn: bool) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"configs": {}}
    old = results["configs"].get(name, {})
    if not with_dnn and "dnn" in old.get("sdr", {}):  # keep the +dnn figures of an earlier run
        entry["sdr"] = {**old["sdr"], **entry["sdr"]}
        entry["network_seconds"] = old.get("network_seconds")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    entry["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    entry["commit"], entry["machine"] = commit, f"{platform.machine()} {torch.get_num_threads()} torch threads"
    results["configs"][name] = entry
    results["protocol"] = __doc__.split("Results are")[0].strip()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    from deepnmf.datasets.paths import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="nmf,gauss-e30,poisson-e30,expo-e30",
                        help="comma-separated configuration names (see parse_config)")
    parser.add_argument("--no-dnn", action="store_true", help="score +mu only (no activation network)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vae_dictionary_study"))
    args = parser.parse_args()
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    for name in names:
        try:
            parse_config(name)
        except ValueError as err:
            parser.error(str(err))
    corpus, cfg, held_out = load_data(shared_data_dir())
    print(f"train speakers {sorted(Path(k).name for k in corpus.train)}; validation {[u for u, _ in corpus.test]}; "
          f"noise parts (s) {[(n, a.size / cfg.sr, b.size / cfg.sr) for n, (a, b) in corpus.noises.items()]}; "
          f"held-out frames {held_out.shape[0]}", flush=True)
    for name in names:
        _save(name, run_config(name, corpus, cfg, held_out, args.cache, not args.no_dnn), not args.no_dnn)


if __name__ == "__main__":
    main()
