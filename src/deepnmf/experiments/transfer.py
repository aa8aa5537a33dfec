"""iN-NMF protocols on TIMIT: resolution transfer and two-speaker separation.

Both follow Subramani et al. (2024), see ``papers/NOTES.md`` section 2:

- **resolution transfer**: one speaker, 20 s of speech, compressed magnitude
  ``|STFT| ** 0.5`` (sqrt-Hann windows, hop = size / 2, 16 kHz); an
  ``ImplicitNMF`` trained at size 2000 is sampled at the bins of other sizes
  and only its activations are refitted; it is compared, by the mean
  generalised KL divergence, with KL-NMF fitted directly at each size;
- **two-speaker separation**: mixtures at 0 dB of a disjoint 5 s test
  excerpt of two speakers, each speaker's dictionary learned from 20 s of
  their speech; separation at STFT sizes 1000-2500 with NMF refitted at
  each size and iN-NMF trained at 2000 only (:func:`deepnmf.pipelines.separation.separate`).

Speech of a TIMIT speaker is the concatenation of their sentences (sorted by
file name, silences kept as recorded; ``trim=True`` drops the leading and
trailing ``h#`` silences of the ``.phn`` files); the first ``train_seconds``
train, the next ``test_seconds`` test. Speakers with fewer than 25 s are
left out of the protocols (in the TIMIT sample: ``dr2-marc0``, 24.7 s).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from deepnmf.callbacks import Callback, EpochInfo, notify
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.pipelines._common import send_notice

SR = 16000
SIZES = (1000, 1500, 2000, 2500)


# ------------------------------------------------------------------ data
def _speech_span(wav: Path, n_samples: int) -> tuple[int, int]:
    """Sample range of a TIMIT sentence without its leading/trailing ``h#`` silence."""
    phn = wav.with_suffix(".phn")
    if not phn.is_file():
        return 0, n_samples
    rows = [line.split() for line in phn.read_text().splitlines() if line.strip()]
    start, stop = 0, n_samples
    if rows and rows[0][2] == "h#":
        start = int(rows[0][1])
    if rows and rows[-1][2] == "h#":
        stop = int(rows[-1][0])
    return (start, stop) if stop > start else (0, n_samples)


def load_speaker(folder: str | Path, *, sr: int = SR, trim: bool = False) -> np.ndarray:
    """Concatenated speech of one TIMIT speaker folder.

    Parameters
    ----------
    folder : str or Path
        Folder with the speaker's ``.wav`` (and ``.phn``) files.
    sr : int
    trim : bool
        Drop each sentence's leading and trailing ``h#`` silence.

    Returns
    -------
    x : np.ndarray [shape=(n_samples,)]
    """
    from deepnmf.audio.io import load_audio

    wavs = sorted(Path(folder).glob("*.wav"))
    if not wavs:
        raise DataError(f"no .wav files in {str(folder)!r}")
    parts = []
    for wav in wavs:
        x, _ = load_audio(wav, sr=sr)
        a, b = _speech_span(wav, x.size) if trim and sr == SR else (0, x.size)
        parts.append(x[a:b])
    return np.concatenate(parts)


def split_speaker(x: np.ndarray, *, sr: int = SR, train_seconds: float = 20.0,
                  test_seconds: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """First ``train_seconds`` for training, the next ``test_seconds`` for testing (disjoint)."""
    n_train, n_test = int(train_seconds * sr), int(test_seconds * sr)
    if x.size < n_train + n_test:
        raise DataError(
            f"speaker has {x.size / sr:.1f} s of speech; {train_seconds + test_seconds:g} s are needed"
        )
    return x[:n_train], x[n_train:n_train + n_test]


def timit_speakers(root: str | Path | None = None) -> list[Path]:
    """Speaker folders of the TIMIT sample (``dr*-*``), sorted."""
    from deepnmf.datasets.paths import shared_data_dir

    root = Path(root) if root is not None else shared_data_dir("speech", "timit-sample")
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"no speaker folders in {str(root)!r}")
    return folders


def usable_speakers(folders: Sequence[Path], *, seconds: float = 25.0, sr: int = SR) -> list[Path]:
    """Speakers with at least ``seconds`` of (untrimmed) speech."""
    import soundfile as sf

    keep = []
    for folder in folders:
        total = sum(sf.info(str(w)).duration for w in Path(folder).glob("*.wav"))
        if total >= seconds:
            keep.append(Path(folder))
    return keep


# ---------------------------------------------------------------- models
@dataclass
class ProtocolConfig:
    """Settings shared by both protocols (the reference recipe by default)."""

    rank: int = 20
    train_n_fft: int = 2000
    sizes: tuple[int, ...] = SIZES
    power: float = 0.5
    max_epochs: int = 1000
    tol: float = 0.0  # iN-NMF: stop on a plateau of the loss (0: exactly max_epochs)
    nmf_iter: int = 500
    refit_iter: int = 500
    train_seconds: float = 20.0
    test_seconds: float = 5.0
    random_state: int = 0
    device: str = "cpu"
    model_dir: Path | None = None
    compile: bool = False  # iN-NMF training with torch.compile (same models up to rounding)

    def check(self) -> None:
        if self.rank < 1 or self.max_epochs < 0 or self.nmf_iter < 1 or self.refit_iter < 1:
            raise ParameterError("rank, nmf_iter and refit_iter must be >= 1 and max_epochs >= 0")
        if not self.sizes or min(self.sizes) < 16:
            raise ParameterError(f"sizes must be STFT sizes >= 16, got {self.sizes}")


def _cached_model(cfg: ProtocolConfig, key: str, kind: str, train: Callable[[], Any]):
    """Train a model, or load it from ``cfg.model_dir/key`` when it was saved there before."""
    from deepnmf.models.implicit import ImplicitNMF
    from deepnmf.models.nmf import NMF

    cls = ImplicitNMF if kind == "implicit" else NMF
    folder = cfg.model_dir / key if cfg.model_dir is not None else None
    if folder is not None and (folder / "config.json").is_file():
        return cls.load(folder, device=cfg.device)
    est = train()
    if folder is not None:
        est.save(folder)
    return est


def speaker_models(name: str, x_train: np.ndarray, cfg: ProtocolConfig, *, kind: str, n_fft: int,
                   sr: int = SR, seed: int = 0):
    """A speaker's dictionary (``kind`` "nmf" or "implicit") learned at ``n_fft``; cached in ``cfg.model_dir``.

    Learned by :func:`deepnmf.pipelines.separation.learn_source_model` with the
    explicit seed ``cfg.random_state + seed`` (every speaker the same by default).
    """
    from deepnmf.pipelines.separation import learn_source_model

    tol = f"-t{cfg.tol:g}" if cfg.tol else ""
    key = f"{name}-{kind}-{n_fft}-r{cfg.rank}-" + (f"e{cfg.max_epochs}{tol}" if kind == "implicit" else f"i{cfg.nmf_iter}")
    return _cached_model(cfg, key, kind, lambda: learn_source_model(
        x_train, sr=sr, model=kind, n_fft=n_fft, rank=cfg.rank, power=cfg.power, max_iter=cfg.nmf_iter,
        max_epochs=cfg.max_epochs, tol=cfg.tol, random_state=cfg.random_state + seed, device=cfg.device,
        compile=cfg.compile))


# ------------------------------------------------------ resolution transfer
def _mean_kl(X: np.ndarray, H: Any, W: Any) -> float:
    import torch

    from deepnmf.divergences import beta_divergence

    Xt = torch.as_tensor(X, dtype=torch.float64)
    Y = torch.as_tensor(np.asarray(H), dtype=torch.float64) @ torch.as_tensor(np.asarray(W), dtype=torch.float64)
    return float(beta_divergence(Xt, Y, 1.0, reduction="mean"))


def transfer_one_speaker(name: str, x_train: np.ndarray, cfg: ProtocolConfig, *, sr: int = SR) -> list[dict]:
    """Mean generalised KL on ``|X| ** p`` of iN-NMF (trained at ``train_n_fft``, sampled) vs NMF at each size."""
    from deepnmf.audio.tf import stft_freqs
    from deepnmf.pipelines.separation import compressed_spectrogram

    inmf = speaker_models(name, x_train, cfg, kind="implicit", n_fft=cfg.train_n_fft, sr=sr)
    rows = []
    for n_fft in cfg.sizes:
        X = compressed_spectrogram(x_train, n_fft=n_fft, power=cfg.power)  # (n_frames, n_bins)
        freqs = stft_freqs(n_fft, sr)
        H = inmf.fit_activations(X, freqs=freqs, max_iter=cfg.refit_iter)
        kl_implicit = _mean_kl(X, H, inmf.dictionary_at(freqs))
        nmf = speaker_models(name, x_train, cfg, kind="nmf", n_fft=n_fft, sr=sr)
        kl_nmf = _mean_kl(X, nmf.transform(X, max_iter=cfg.refit_iter), nmf.components_)
        rows.append({"speaker": name, "n_fft": n_fft, "kl_implicit": kl_implicit, "kl_nmf": kl_nmf,
                     "ratio": kl_implicit / kl_nmf})
    return rows


def _done(progress: Callback | None, done: int, total: int, stage: str, message: str) -> None:
    """A runner's record after a unit of work: ``done`` of ``total`` units of ``stage``."""
    notify(progress, EpochInfo(done, total, stage=stage, message=message))


def resolution_transfer(speakers: Sequence[Path], cfg: ProtocolConfig | None = None, *,
                        progress: Callback | None = None) -> dict:
    """Run the resolution-transfer protocol on several speakers.

    ``progress`` receives :class:`deepnmf.callbacks.EpochInfo` records with
    ``stage="transfer"``: a notice (``epoch=0``, ``"transfer: <speaker>"``)
    before each speaker, and ``epoch`` speakers done of ``max_epochs`` after.

    Returns
    -------
    result : dict
        ``"rows"`` (one per speaker and size), ``"summary"`` (per size: mean
        KL of each model and mean ratio) and ``"config"``.
    """
    cfg = cfg or ProtocolConfig()
    cfg.check()
    rows = []
    for i, folder in enumerate(speakers, start=1):
        send_notice(progress, f"transfer: {Path(folder).name}", stage="transfer")
        x_train, _ = split_speaker(load_speaker(folder), train_seconds=cfg.train_seconds, test_seconds=cfg.test_seconds)
        rows += transfer_one_speaker(Path(folder).name, x_train, cfg)
        _done(progress, i, len(speakers), "transfer", Path(folder).name)
    summary = []
    for n_fft in cfg.sizes:
        sel = [r for r in rows if r["n_fft"] == n_fft]
        summary.append({"n_fft": n_fft, **{k: float(np.mean([r[k] for r in sel])) for k in ("kl_implicit", "kl_nmf", "ratio")}})
    return {"rows": rows, "summary": summary, "config": _config_json(cfg)}


def _config_json(cfg: ProtocolConfig) -> dict:
    out = dict(vars(cfg))
    out["sizes"] = list(cfg.sizes)
    out["model_dir"] = str(cfg.model_dir) if cfg.model_dir is not None else None
    return out


# ------------------------------------------------------- two-speaker separation
METRICS = ("sdr", "sir", "sar", "stoi")


def mix_at_0db(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale ``b`` to the energy of ``a``; return ``(mixture, a, b_scaled)``, each ``(n_samples,)``."""
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    eb = float(np.sum(b**2))
    if not eb > 0 or not float(np.sum(a**2)) > 0:
        raise DataError("cannot mix at 0 dB: a source is silent")
    b = b * np.sqrt(float(np.sum(a**2)) / eb)
    return a + b, a, b


def score_separation(references: np.ndarray, estimates: np.ndarray, *, sr: int = SR) -> dict[str, float]:
    """Mean over sources of BSS Eval SDR/SIR/SAR (dB) and STOI; arrays ``(n_sources, n_samples)``."""
    from deepnmf.metrics import bss_eval, stoi

    r = bss_eval(references, estimates)
    scores = {k: float(np.mean(r[k])) for k in ("sdr", "sir", "sar")}
    scores["stoi"] = float(np.nanmean([stoi(ref, est, sr) for ref, est in zip(references, estimates)]))
    return scores


def separate_pair(a: tuple[str, np.ndarray, np.ndarray], b: tuple[str, np.ndarray, np.ndarray],
                  cfg: ProtocolConfig, *, sr: int = SR) -> list[dict]:
    """Both models at every size on one 0 dB mixture; ``a``/``b`` are ``(name, train, test)``."""
    from deepnmf.pipelines.separation import separate

    mixture, ra, rb = mix_at_0db(a[2], b[2])
    refs = np.stack([ra, rb])
    implicit = [speaker_models(s[0], s[1], cfg, kind="implicit", n_fft=cfg.train_n_fft, sr=sr) for s in (a, b)]
    rows = []
    for n_fft in cfg.sizes:
        nmf = [speaker_models(s[0], s[1], cfg, kind="nmf", n_fft=n_fft, sr=sr) for s in (a, b)]
        for kind, models in (("nmf", nmf), ("implicit", implicit)):
            est = separate(mixture, models, sr=sr, n_fft=n_fft, power=cfg.power, max_iter=cfg.refit_iter)
            rows.append({"pair": f"{a[0]}+{b[0]}", "n_fft": n_fft, "model": kind, **score_separation(refs, est, sr=sr)})
    return rows


def two_speaker_separation(speakers: Sequence[Path], cfg: ProtocolConfig | None = None, *,
                           max_pairs: int | None = None, progress: Callback | None = None) -> dict:
    """Run the two-speaker separation protocol on all pairs of ``speakers`` (or the first ``max_pairs``).

    ``progress`` receives :class:`deepnmf.callbacks.EpochInfo` records with
    ``stage="separation"``: a notice (``epoch=0``) before each pair, and
    ``epoch`` pairs done of ``max_epochs`` after.

    Returns
    -------
    result : dict
        ``"rows"`` (pair x size x model), ``"summary"`` (per size and model:
        mean SDR, SIR, SAR, STOI over pairs) and ``"config"``.
    """
    from itertools import combinations

    cfg = cfg or ProtocolConfig()
    cfg.check()
    if len(speakers) < 2:
        raise ParameterError("the separation protocol needs at least two speakers")
    data = {}
    for folder in speakers:
        tr, te = split_speaker(load_speaker(folder), train_seconds=cfg.train_seconds, test_seconds=cfg.test_seconds)
        data[Path(folder).name] = (Path(folder).name, tr, te)
    pairs = list(combinations(sorted(data), 2))[:max_pairs]
    rows = []
    for i, (na, nb) in enumerate(pairs, start=1):
        send_notice(progress, f"separation: pair {i}/{len(pairs)} {na} + {nb}", stage="separation")
        rows += separate_pair(data[na], data[nb], cfg)
        _done(progress, i, len(pairs), "separation", f"{na} + {nb}")
    summary = []
    for n_fft in cfg.sizes:
        for kind in ("nmf", "implicit"):
            sel = [r for r in rows if r["n_fft"] == n_fft and r["model"] == kind]
            summary.append({"n_fft": n_fft, "model": kind, "n_pairs": len(sel),
                            **{m: float(np.mean([r[m] for r in sel])) for m in METRICS}})
    return {"rows": rows, "summary": summary, "config": _config_json(cfg)}


# ------------------------------------------------------------------ tables
def separation_table(summary: Sequence[dict]) -> str:
    """Markdown table in the layout of NOTES.md: one row per size, ``NMF / iN-NMF`` per metric."""
    lines = ["| STFT size | SDR NMF / iN-NMF | SIR NMF / iN-NMF | SAR NMF / iN-NMF | STOI NMF / iN-NMF |",
             "|---|---|---|---|---|"]
    sizes = sorted({r["n_fft"] for r in summary})
    for n_fft in sizes:
        by = {r["model"]: r for r in summary if r["n_fft"] == n_fft}
        cells = []
        for m in METRICS:
            fmt = "{:.3f}" if m == "stoi" else "{:.2f}"
            cells.append(" / ".join(fmt.format(by[k][m]) for k in ("nmf", "implicit")))
        lines.append(f"| {n_fft} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def transfer_table(summary: Sequence[dict]) -> str:
    """Markdown table: per size, mean KL of iN-NMF (sampled) and NMF (fitted there) and their ratio."""
    lines = ["| STFT size | KL iN-NMF (trained at one size) | KL NMF (fitted at this size) | ratio |",
             "|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['n_fft']} | {r['kl_implicit']:.5f} | {r['kl_nmf']:.5f} | {r['ratio']:.3f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ outputs
def write_transfer(result: dict, out: str | Path, *, speaker: Path, cfg: ProtocolConfig, sr: int = SR) -> list[Path]:
    """``transfer.json``, ``transfer.md`` and ``dictionary_sizes.png`` (``speaker``'s iN-NMF at the extreme sizes).

    The figure's model comes from ``cfg.model_dir`` when the protocol saved it there.
    """
    from deepnmf.pipelines._common import write_json
    from deepnmf.plotting.implicit import plot_dictionary_at_sizes
    from deepnmf.report import environment_info

    out = Path(out)
    paths = [write_json(out / "transfer.json", {**result, "environment": environment_info()}), out / "transfer.md"]
    paths[1].write_text(transfer_table(result["summary"]))
    x_train, _ = split_speaker(load_speaker(speaker), train_seconds=cfg.train_seconds, test_seconds=cfg.test_seconds)
    model = speaker_models(Path(speaker).name, x_train, cfg, kind="implicit", n_fft=cfg.train_n_fft, sr=sr)
    sizes = (min(cfg.sizes), max(cfg.sizes))
    paths.append(plot_dictionary_at_sizes(model, sizes, sr, out / "dictionary_sizes.png", fmax=4000))
    return paths


def write_separation(result: dict, out: str | Path) -> list[Path]:
    """``separation.json``, ``separation.md`` and ``separation.png`` (the summary table as bars)."""
    from deepnmf.pipelines._common import write_json
    from deepnmf.plotting.implicit import plot_separation_table
    from deepnmf.report import environment_info

    out = Path(out)
    paths = [write_json(out / "separation.json", {**result, "environment": environment_info()}), out / "separation.md"]
    paths[1].write_text(separation_table(result["summary"]))
    paths.append(plot_separation_table(result["summary"], out / "separation.png"))
    return paths
