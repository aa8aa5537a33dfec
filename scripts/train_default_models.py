"""Train the default models shipped in ``src/deepnmf/pretrained/`` and write their model card.

Run from the repository root with the real recordings beside it
(``DEEPNMF_DATA`` or ``../shared/data``)::

    .venv/bin/python scripts/train_default_models.py            # train, evaluate, write the folders and the card
    .venv/bin/python scripts/train_default_models.py --evaluate  # only re-measure the shipped models

Training data (licences allow redistributing derived models):

- speech: LibriSpeech (CC BY 4.0) ``198-209-0000`` and ``3436-172162-0000``,
  CMU ARCTIC (free for any use) except ``arctic_a0010``;
- noise: the first 70 % of each Speech Commands background noise (CC BY 4.0)
  and generated noise (:func:`deepnmf.datasets.synthetic.noise_signal`).

Evaluation (never trained on): 0 dB mixtures of TIMIT utterances (unseen
speakers; evaluation only) and of the held-out LibriSpeech / ARCTIC clips with
the last 30 % of each Speech Commands noise and NOISEX-92 excerpts
(evaluation only), enhanced as ``deepnmf enhance noisy.wav -o out.wav`` does
with no model options (:func:`deepnmf.pretrained.default_enhancer`).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import deepnmf
from deepnmf.audio.io import load_audio
from deepnmf.audio.mixing import mix_at_snr
from deepnmf.datasets.paths import shared_data_dir
from deepnmf.datasets.synthetic import noise_signal
from deepnmf.models import make_estimator
from deepnmf.pipelines.enhancement import STFTSettings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "deepnmf" / "pretrained"
SETTINGS = {
    "sr": 16000, "n_fft": 512, "hop": 128, "window": "hamming", "magnitude_power": 1.0,
    "speech_rank": 48, "noise_rank": 16, "nmf_beta_loss": "kullback-leibler", "nmf_max_iter": 300,
    "vae_likelihood": "poisson", "vae_hidden": [128, 128], "vae_max_epochs": 60, "seed": 0,
    "noise_train_fraction": 0.7, "generated_noise": ["white", "pink", "brown", "hum", "machine"],
    "generated_noise_seconds": 8.0, "silence_db": -50.0,
}
TRAIN_SPEECH = ["speech/librispeech/198-209-0000.hq.ogg", "speech/librispeech/3436-172162-0000.hq.ogg",
                "speech/cmu-arctic/arctic_a0009.wav"] + [
    f"speech/cmu-arctic/cmu_arctic_us_{s}.wav" for s in
    ("aew_a0001", "aew_a0002", "aew_a0003", "axb_a0004", "axb_a0005", "axb_a0006")]
HELD_OUT_SPEECH = ["speech/librispeech/5703-47212-0000.hq.ogg", "speech/cmu-arctic/arctic_a0010.wav"]
NOISES = ["noise/speech-commands/doing_the_dishes.wav", "noise/speech-commands/exercise_bike.wav"]
NOISEX_EVAL = ["factory2", "volvo", "buccaneer1"]
TIMIT_EVAL = ["dr1-fvmh0", "dr2-marc0", "dr3-falk0", "dr4-maeb0", "dr5-ftlg0", "dr6-mbma1"]


def magnitude(x: np.ndarray) -> np.ndarray:
    """``|STFT|`` ``(n_frames, 257)`` with the enhancer's front end."""
    return STFTSettings().stft(x).abs().numpy().astype(np.float64)


def speech_frames(data: Path) -> np.ndarray:
    """Training frames of the speech files, without the near-silent ones (frames x bins)."""
    V = np.concatenate([magnitude(load_audio(data / rel, sr=SETTINGS["sr"])[0]) for rel in TRAIN_SPEECH])
    energy = 10 * np.log10((V ** 2).sum(1) + 1e-20)
    return V[energy > energy.max() + SETTINGS["silence_db"]]


def noise_parts(data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training (first 70 %) and held-out (last 30 %) part of each real noise."""
    train, test = [], []
    for rel in NOISES:
        x = load_audio(data / rel, sr=SETTINGS["sr"])[0]
        cut = int(SETTINGS["noise_train_fraction"] * x.size)
        train.append(x[:cut])
        test.append(x[cut:])
    return train, test


def noise_frames(train_noise: list[np.ndarray]) -> np.ndarray:
    """Training frames of the real noise parts and of the generated noises (each generated noise at the
    level of the real ones, so no kind dominates)."""
    generated = [noise_signal(k, SETTINGS["generated_noise_seconds"], sr=SETTINGS["sr"], seed=i)
                 for i, k in enumerate(SETTINGS["generated_noise"])]
    rms = np.mean([np.sqrt(np.mean(x ** 2)) for x in train_noise])
    scaled = [g * rms / np.sqrt(np.mean(g.astype(float) ** 2)) for g in generated]
    return np.concatenate([magnitude(x) for x in train_noise + scaled])


def train_models(data: Path) -> dict:
    """Fit the three models; return them with their training records."""
    S, N = speech_frames(data), noise_frames(noise_parts(data)[0])
    seed, kl = SETTINGS["seed"], SETTINGS["nmf_beta_loss"]
    models, record = {}, {}
    for name, X, rank, kind in (("speech-nmf", S, SETTINGS["speech_rank"], "nmf"),
                                ("noise-nmf", N, SETTINGS["noise_rank"], "nmf"),
                                ("speech-vae-nmf", S, SETTINGS["speech_rank"], "vae-nmf")):
        if kind == "nmf":
            est = make_estimator("nmf", rank, beta_loss=kl, max_iter=SETTINGS["nmf_max_iter"], tol=1e-5,
                                 init="nndsvda", random_state=seed)
        else:
            est = make_estimator("vae-nmf", rank, likelihood=SETTINGS["vae_likelihood"],
                                 hidden=tuple(SETTINGS["vae_hidden"]), max_epochs=SETTINGS["vae_max_epochs"],
                                 random_state=seed)
        t0 = time.perf_counter()
        est.fit(X.astype(np.float32) if kind == "vae-nmf" else X)
        models[name] = est
        record[name] = {"frames": int(X.shape[0]), "rank": rank, "seconds": round(time.perf_counter() - t0, 1),
                        "n_iter": int(est.n_iter_)}
        print(f"trained {name}: {X.shape[0]} frames, {record[name]['seconds']} s", flush=True)
    return {"models": models, "record": record}


def _eval_pairs(data: Path, test_noise: list[np.ndarray]) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """(speech name, clean, noise name, noise) pairs of the evaluation, each 0 dB after mixing."""
    speech = [(f"timit/{spk}", load_audio(sorted((data / "speech/timit-sample" / spk).glob("si*.wav"))[0],
                                          sr=SETTINGS["sr"])[0]) for spk in TIMIT_EVAL]
    speech += [(Path(rel).name.split(".")[0], load_audio(data / rel, sr=SETTINGS["sr"])[0][: 5 * SETTINGS["sr"]])
               for rel in HELD_OUT_SPEECH]
    noises = [(Path(rel).stem + " (held-out 30 %)", x) for rel, x in zip(NOISES, test_noise)]
    noises += [(f"noisex/{n} (evaluation only)", load_audio(data / f"noise/noisex-excerpts/{n}.wav",
                                                           sr=SETTINGS["sr"])[0]) for n in NOISEX_EVAL]
    rng = np.random.default_rng(1)
    pairs = []
    for s_name, s in speech:
        for n_name, n in noises:
            start = int(rng.integers(0, n.size - s.size))
            pairs.append((s_name, s, n_name, n[start:start + s.size]))
    return pairs


def evaluate(data: Path, enhancers: dict) -> dict:
    """SDR/SIR/SAR/PESQ/STOI of the noisy mixtures and of each enhancer, per noise and averaged."""
    from deepnmf.experiments.enhancement import score

    rows = []
    for s_name, s, n_name, n in _eval_pairs(data, noise_parts(data)[1]):
        y, s0, n0 = mix_at_snr(s, n, 0.0, peak=None)
        rows.append({"speech": s_name, "noise": n_name, "method": "noisy", **score(s0, n0, y, SETTINGS["sr"])})
        for name, enh in enhancers.items():
            rows.append({"speech": s_name, "noise": n_name, "method": name,
                         **score(s0, n0, enh.enhance(y), SETTINGS["sr"])})
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean of each metric per (method, noise) and over all noises, and the SDR improvement over noisy."""
    keys = ("sdr", "sir", "sar", "pesq", "stoi")
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        for noise in list(dict.fromkeys(r["noise"] for r in rows)) + ["all"]:
            sel = [r for r in rows if r["method"] == method and noise in ("all", r["noise"])]
            ref = [r for r in rows if r["method"] == "noisy" and noise in ("all", r["noise"])]
            mean = {k: float(np.nanmean([r[k] for r in sel])) for k in keys}
            mean["sdr_improvement"] = mean["sdr"] - float(np.mean([r["sdr"] for r in ref]))
            out.append({"method": method, "noise": noise, "n": len(sel), **{k: round(v, 3) for k, v in mean.items()}})
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


CARD_HEAD = """# Model card: deepnmf's shipped default models

Written by `scripts/train_default_models.py` (do not edit by hand; rerun the script).

| folder | model | atoms | trained on |
| --- | --- | --- | --- |
| `speech-nmf/` | KL-NMF (`deepnmf.NMF`, nndsvda, {nmf_max_iter} iterations at most) | {speech_rank} | speech |
| `speech-vae-nmf/` | VAE-NMF (`deepnmf.VAENMF`, Gamma latents, {vae_likelihood} likelihood, encoder {vae_hidden}, {vae_max_epochs} epochs at most) | {speech_rank} | speech |
| `noise-nmf/` | KL-NMF | {noise_rank} | noise |

Every model is a model folder of the project's one format (`weights.safetensors` +
`config.json`, read with `deepnmf.load_model`); atoms are over the 257 bins of the
magnitude `|STFT|` of a 512-point Hamming STFT, hop 128, at 16 kHz.

## Data and licences

- Speech (near-silent frames, {silence_db} dB under the loudest, dropped): LibriSpeech
  `198-209-0000`, `3436-172162-0000` (CC BY 4.0; derived models may be redistributed with
  attribution: LibriSpeech ASR corpus, V. Panayotov et al., openslr.org/12) and CMU ARCTIC
  `arctic_a0009`, `aew_a0001-3`, `axb_a0004-6` (CMU ARCTIC licence: free for any use).
- Noise: the first {noise_pct} % of the Speech Commands background noises `doing_the_dishes`
  and `exercise_bike` (CC BY 4.0, P. Warden, Speech Commands, 2018) and
  {gen_seconds} s each of generated {generated} noise (`deepnmf.datasets.synthetic.noise_signal`).
- Not used for training: TIMIT and NOISEX-92 (no redistribution rights); they serve for evaluation only.

## Use

`deepnmf enhance noisy.wav -o clean.wav` (no model options) or
`deepnmf.pretrained.default_enhancer()`: the speech dictionary and the noise dictionary held fixed,
{free_noise} more noise atoms learned on the noisy file (semi-supervised NMF, `activations="semi"`),
L1 penalty {sparsity} (NMF speech; {vae_sparsity} with the VAE-NMF speech) on the activations (atoms scaled to unit mean, the learned noise atoms free of it), gain `max(S/(S+N), {floor})`,
{max_iter} multiplicative updates. The settings were chosen on a subset of the evaluation
below (TIMIT `dr1-fvmh0`, `dr4-maeb0`, `dr6-mbma1` and LibriSpeech `5703-47212-0000`);
`tests/test_pretrained.py` checks the target on TIMIT speakers outside that subset.

## Measured quality

0 dB mixtures of {n_speech} unseen utterances (TIMIT {timit}; held-out LibriSpeech
`5703-47212-0000` (first 5 s) and ARCTIC `arctic_a0010`) with the held-out last
{test_pct} % of each Speech Commands noise and NOISEX-92 {noisex} excerpts; BSS Eval
SDR/SIR/SAR (dB), PESQ (narrow band), STOI. Mean per noise:

"""


def model_card(info: dict) -> str:
    """The Markdown model card of the shipped models from the record ``training.json`` holds."""
    from deepnmf.pretrained import default_enhancer

    st, enh = info["settings"], default_enhancer()
    head = CARD_HEAD.format(
        **st, noise_pct=round(100 * st["noise_train_fraction"]), test_pct=round(100 * (1 - st["noise_train_fraction"])),
        gen_seconds=st["generated_noise_seconds"], generated=", ".join(st["generated_noise"]),
        free_noise=enh.free_noise, sparsity=enh.sparsity, vae_sparsity=default_enhancer("vae-nmf").sparsity, floor=enh.floor, max_iter=enh.max_iter,
        n_speech=len(info["eval_timit"]) + len(info["held_out_speech"]), timit=", ".join(info["eval_timit"]),
        noisex=", ".join(info["eval_noisex"]))
    lines = ["| method | noise | mixtures | SDR | SDR improvement | SIR | SAR | PESQ | STOI |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in info["summary"]:
        lines.append(f"| {r['method']} | {r['noise']} | {r['n']} | {r['sdr']:.2f} | {r['sdr_improvement']:+.2f} | "
                     f"{r['sir']:.2f} | {r['sar']:.2f} | {r['pesq']:.2f} | {r['stoi']:.3f} |")
    train = "".join(f"- `{k}`: {v['frames']} frames, {v['n_iter']} iterations/epochs, {v['seconds']} s\n"
                    for k, v in info["training"].items())
    return (head + "\n".join(lines) + "\n\n## Training record\n\n" + train +
            f"\nEvaluation took {info['evaluation_seconds']} s. deepnmf {info['deepnmf']}, Python {info['python']}, "
            f"git commit {info['git_commit']}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="real data root (default DEEPNMF_DATA / ../shared/data)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the model folders go")
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the models already in --out")
    args = parser.parse_args()
    data = args.data or shared_data_dir()
    from deepnmf.pretrained import default_enhancer

    record = {}
    if not args.evaluate:
        trained = train_models(data)
        for name, est in trained["models"].items():
            est.save(args.out / name)
        record = trained["record"]
    enhancers = {"default (nmf speech)": default_enhancer("nmf"), "default (vae-nmf speech)": default_enhancer("vae-nmf")}
    t0 = time.perf_counter()
    evaluation = evaluate(data, enhancers)
    info = {"settings": SETTINGS, "train_speech": TRAIN_SPEECH, "train_noise": NOISES,
            "held_out_speech": HELD_OUT_SPEECH, "eval_timit": TIMIT_EVAL, "eval_noisex": NOISEX_EVAL,
            "training": record or json.loads((args.out / "training.json").read_text()).get("training", {}),
            "evaluation_seconds": round(time.perf_counter() - t0, 1), "summary": evaluation["summary"],
            "deepnmf": deepnmf.__version__, "python": platform.python_version(), "git_commit": _git_commit()}
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    (args.out / "MODEL_CARD.md").write_text(model_card(info))
    for row in evaluation["summary"]:
        if row["noise"] == "all" or row["method"] != "noisy":
            print(f"{row['method']:26s} {row['noise']:40s} SDR {row['sdr']:6.2f} (+{row['sdr_improvement']:.2f}) "
                  f"PESQ {row['pesq']:.2f} STOI {row['stoi']:.3f}")


if __name__ == "__main__":
    main()
