"""The VAE-NMF paper's speech-enhancement experiment (its Tables 1 and 2) as a runner.

Protocol (``run_enhancement``):

1. speech dictionary (rank 40) from about 10000 random frames of the
   training speakers' utterances;
2. one noise dictionary (rank 40) per noise from about 9000 frames of the
   first part of the noise recording (a short file gives its first 70 %
   instead), or one from all noises pooled (``pooled=True``, Table 2);
   ``"babble"`` is constructed from training speakers (never test speakers);
3. per dictionary type and noise, the activation network of Kang et al.
   when a ``+dnn`` method asks for it, trained on mixtures of the training
   speech with the training part of the noise;
4. test mixtures: ``n_test`` utterances of the test speakers (round robin
   over them; a file named as a training file, such as TIMIT's SA sentences
   that every speaker reads, only when the others run out), each mixed at
   every SNR with an excerpt of the disjoint later part of each noise;
5. every method (``DICTIONARY+ACTIVATIONS``, plus ``noisy``) scored with BSS
   Eval (speech and noise references), PESQ (narrow and wide band) and STOI,
   averaged over the utterances of each (method, noise, SNR) cell.

Models are cached in ``out/models`` with the recipe that made them, so a
rerun with more methods does not retrain. Dictionaries are built by
:func:`deepnmf.models.make_estimator`, enhancers by
:mod:`deepnmf.pipelines.enhancement`. Library code: it returns rows and
writes files; progress goes to a :data:`deepnmf.callbacks.Callback` as
:class:`~deepnmf.callbacks.EpochInfo` records (``stage``, ``epoch`` units
done of ``max_epochs``, ``message``), which the CLI turns into progress bars.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from deepnmf.callbacks import Callback, EpochInfo, notify
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn.networks import RECURRENT
from deepnmf.pipelines.enhancement import DEFAULT_EXPONENTS, DEFAULT_GAINS
from deepnmf.pipelines.frame_networks import LOSS_SCALES
from deepnmf.pipelines.network_training import RECOMMENDED, RECOMMENDED_OBJECTIVE, NetworkTraining

DICTIONARIES = ("nmf", "vae-nmf")
ACTIVATION_METHODS = ("mu", "dnn", "encoder")
MASK_METHOD = "dnn-mask"
DNMF_METHOD = "dnmf"
ROW_KEYS = ("method", "noise", "snr", "sdr", "sir", "sar", "pesq", "stoi", "n_utterances")
METRICS = ("sdr", "sir", "sar", "pesq", "pesq_wb", "stoi")


@dataclass
class EnhancementConfig:
    """Settings of :func:`run_enhancement` (defaults: the paper's protocol)."""

    train_speech: Sequence[str | Path]
    test_speech: Sequence[str | Path]
    noises: Sequence[str | Path]
    out: str | Path
    snrs: Sequence[float] = (-5.0, 0.0, 5.0, 10.0)
    methods: Sequence[str] = ("nmf+mu", "vae-nmf+dnn", "dnmf")
    n_test: int = 4
    # worker processes (1: everything in this process): the dictionaries, then each noise model's networks, train
    # in parallel (one thread each), and the enhanced utterances are scored while the next are enhanced. Above 1, a
    # script calling run_enhancement needs the `if __name__ == "__main__":` guard of multiprocessing's spawn start;
    # `deepnmf experiment enhancement --jobs` defaults to 2
    jobs: int = 1
    dnmf_solver: str = "mu"  # how DNMF's reconstruction dictionary trains: "mu" (Weninger et al.) or "adam"
    dnmf_epochs: int = 200
    pooled: bool = False
    n_components: int = 40
    speech_frames: int = 10000
    noise_frames: int = 9000
    max_train_fraction: float = 0.7
    babble_talkers: int = 6
    babble_seconds: float = 60.0
    sr: int = 16000
    power: float | None = None
    floor: float | None = None
    exponent: float | None = None  # the gain's exponent at enhancement time (None: DEFAULT_EXPONENTS)
    sparsity: float = 0.0
    nmf_iter: int = 200
    vae_epochs: int = 30
    vae_likelihood: str = "poisson"  # chosen on validation speakers: docs/vae-nmf.md, "Dictionaries for enhancement"
    vae_kl_warmup: int = 10  # KL annealing epochs (VAENMF(kl_warmup=)): more atoms used; +0.06 dB on validation, within noise
    vae_kl_weight: float = 1.0  # the KL term's weight after the warm-up (VAENMF(kl_weight=)); 1: the ELBO
    vae_init: str = "nmf"  # the decoder's start: "nmf" (VAENMF(init="nmf")) or "random"; chosen on validation speakers
    # the networks (activation networks of +dnn, the dnn-mask baseline); defaults chosen on validation speakers
    # of the training side (benchmarks/tune_enhancement_networks.py, docs/enhancement.md); the values live in
    # pipelines.network_training.RECOMMENDED, which the demo trains with too
    # 3 epochs over 10 mixtures per utterance (the steps of 3 for 10, more diverse data): nmf+dnn 10.42 against
    # 10.18 on validation with 64 context bands, 10.11 / 10.27 against 9.93 / 10.18 (seeds 0 / 1) without them
    # (docs/enhancement.md); before: 3 for 10 (512x512, 512-frame batches: 9.14-9.17 dB at e = 1, against
    # 9.21-9.28 for 12 epochs and 9.00-9.12 for 256x256 networks in 128-frame batches for 8)
    dnn_epochs: int = RECOMMENDED.epochs
    dnn_copies: int = RECOMMENDED.n_copies  # 10 training mixtures per utterance (random noise excerpt and SNR each)
    # at most 1000 of them (utterances drawn at random) per network: the cost stays bounded on large corpora
    dnn_max_mixtures: int = RECOMMENDED.max_mixtures
    dnmf_max_mixtures: int = 300  # the same for DNMF (one mixture per utterance; it fits 20000 frames of them)
    dnn_context: int = RECOMMENDED.context  # 2 frames on each side
    # 64: the context frames and noise estimate as means of this many mel-like bands (0: every bin;
    # FrameNetwork(context_bands=)): validation +0.25 dB for the mask networks (10.57 against 10.32, seed 1;
    # ensemble seed 0: 10.66 against 10.41) and +0.20-0.25 for nmf+dnn, with 40% fewer multiply-adds per frame
    # (docs/enhancement.md, "Banded context"); 32 bands 10.48, context 4 with 64 bands 10.45
    dnn_context_bands: int = RECOMMENDED.context_bands
    dnn_hidden: Sequence[int] = RECOMMENDED.hidden  # (512, 512)
    dnn_batch_size: int = RECOMMENDED.batch_size  # 512 frames per Adam step (2 CPU cores work 2x better than at 128)
    # 1e-3: Adam's learning rate, decayed by dnn_lr_schedule (validation, mean of the 3 networks: cosine from
    # 1e-3 9.54 dB, cosine from 2e-3 9.50, constant 2e-3 9.43; 3e-3 diverged on factory2)
    dnn_lr: float = RECOMMENDED.lr
    dnn_lr_schedule: str = RECOMMENDED.lr_schedule  # "cosine" ("constant" or "cosine", fit_module)
    # +dnn: "signal" (through the frozen dictionaries) or "activations" (Kang et al.'s targets)
    dnn_objective: str = RECOMMENDED_OBJECTIVE
    # True: the utterance's noise estimate beside every frame (Seltzer et al. 2013): validation dnn-mask 9.38,
    # nmf+dnn 9.37 against 9.17 / 9.14 without
    dnn_noise_aware: bool = RECOMMENDED.noise_aware
    dnn_noise_window: int = 0  # noise-aware input: frames on each side of a running noise estimate (0: one per utterance)
    dnn_recurrent: str | None = None  # None (MLP), "gru" or "lstm", for the activation and mask networks
    dnn_discriminative: float = RECOMMENDED.discriminative  # 0.05: Huang et al.'s weight (signal objectives)
    dnn_loss_scale: str = "mixture"  # units of each training mixture in the signal objectives (signal_sources):
    # "mixture", "noise", "speech" or "sdr" (noise units, reweighted by each mixture's error); the alternatives
    # were within seed noise on validation (docs/enhancement.md)
    mask_objective: str = "signal"  # the dnn-mask baseline: "signal" (Huang et al.) or "mask" (ratio-mask error)
    mask_output: str = "joint"  # "joint" (Huang et al.'s joint mask layer) or "sigmoid"
    mask_networks: int = 2  # an ensemble of this many mask networks (seeds random_state + i), masks averaged:
    # validation 9.77 dB against 9.55 and 9.71 for its two members alone (docs/enhancement.md)
    # the mask networks' training mixtures and epochs (None: dnn_copies, dnn_epochs, dnn_max_mixtures): 10 mixtures per
    # utterance for 3 epochs (the same number of steps as 3 for 10, more diverse data) scored 0.12-0.18 dB more on
    # validation at gain exponent 2 (docs/enhancement.md), for 20-30% more time per mask network (about 70 s per run)
    mask_copies: int | None = 10
    mask_epochs: int | None = 3
    mask_max_mixtures: int | None = 1000
    random_state: int = 0
    extra: dict = field(default_factory=dict)


def parse_methods(methods: Sequence[str] | str) -> list[tuple[str, str]]:
    """``"nmf+mu,vae-nmf+dnn"`` -> ``[("nmf", "mu"), ("vae-nmf", "dnn")]``, validated."""
    if isinstance(methods, str):
        methods = [methods]
    names = [m.strip().lower() for item in methods for m in str(item).split(",") if m.strip()]
    if not names:
        raise ParameterError("no methods given; for example --methods nmf+mu,vae-nmf+dnn")
    parsed = []
    for name in names:
        if name == "noisy":
            continue
        if name == MASK_METHOD:
            parsed += [] if ("dnn", "mask") in parsed else [("dnn", "mask")]
            continue
        if name == DNMF_METHOD:
            parsed += [] if ("nmf", "dnmf") in parsed else [("nmf", "dnmf")]
            continue
        dictionary, _, activations = name.partition("+")
        if dictionary not in DICTIONARIES or activations not in ACTIVATION_METHODS:
            raise ParameterError(
                f"unknown method {name!r}: use DICTIONARY+ACTIVATIONS with DICTIONARY in "
                f"{', '.join(DICTIONARIES)} and ACTIVATIONS in {', '.join(ACTIVATION_METHODS)} (e.g. vae-nmf+dnn), "
                f"or {MASK_METHOD} (the DNN mask baseline) or {DNMF_METHOD} (discriminative NMF on the nmf dictionaries)"
            )
        if activations == "encoder" and dictionary != "vae-nmf":
            raise ParameterError(f"{name}: the encoder activations exist only for vae-nmf dictionaries")
        if (dictionary, activations) not in parsed:
            parsed.append((dictionary, activations))
    return parsed


def method_name(kind: str, activations: str) -> str:
    """``("nmf", "mu")`` -> ``"nmf+mu"``; the mask baseline is ``"dnn-mask"``."""
    return {"mask": MASK_METHOD, "dnmf": DNMF_METHOD}.get(activations, f"{kind}+{activations}")


def _check_config(cfg: EnhancementConfig) -> None:
    from deepnmf._utils import check_choice, check_nonneg_float, check_positive_int

    for name in ("n_test", "n_components", "speech_frames", "noise_frames", "nmf_iter", "vae_epochs", "dnn_max_mixtures",
                 "dnmf_max_mixtures",
                 "dnn_epochs", "dnn_copies", "dnn_batch_size", "babble_talkers", "dnmf_epochs", "mask_networks",
                 "jobs"):
        check_positive_int(getattr(cfg, name), name)
    check_positive_int(cfg.dnn_noise_window, "dnn_noise_window", minimum=0)
    check_positive_int(cfg.dnn_context_bands, "dnn_context_bands", minimum=0)
    if cfg.dnn_context_bands > 257:  # the experiment's STFT: 512 points
        raise ParameterError(f"dnn_context_bands must be at most 257 (the bins of the experiment's STFT), got {cfg.dnn_context_bands}")
    for name in ("mask_copies", "mask_epochs", "mask_max_mixtures"):
        if getattr(cfg, name) is not None:
            check_positive_int(getattr(cfg, name), name)
    if cfg.dnn_noise_window and not cfg.dnn_noise_aware:
        raise ParameterError("dnn_noise_window sets the running noise estimate of noise-aware networks: "
                             "it needs dnn_noise_aware")
    if cfg.exponent is not None and not (np.isfinite(cfg.exponent) and cfg.exponent > 0):
        raise ParameterError(f"exponent must be a positive number, got {cfg.exponent}")
    if not (np.isfinite(cfg.dnn_lr) and cfg.dnn_lr > 0):
        raise ParameterError(f"dnn_lr must be a positive number, got {cfg.dnn_lr}")
    check_choice(cfg.dnn_objective, "dnn_objective", ("activations", "signal", "phase"))
    check_choice(cfg.dnn_lr_schedule, "dnn_lr_schedule", ("constant", "cosine"))
    check_choice(cfg.dnn_loss_scale, "dnn_loss_scale", LOSS_SCALES)
    check_choice(cfg.vae_likelihood, "vae_likelihood", ("gaussian", "poisson", "exponential"))
    check_positive_int(cfg.vae_kl_warmup, "vae_kl_warmup", minimum=0)
    check_choice(cfg.vae_init, "vae_init", ("random", "nmf"))
    if check_nonneg_float(cfg.vae_kl_weight, "vae_kl_weight") == 0.0:
        raise ParameterError("vae_kl_weight must be > 0, got 0")
    check_choice(cfg.mask_objective, "mask_objective", ("mask", "signal", "phase"))
    check_choice(cfg.mask_output, "mask_output", ("sigmoid", "joint"))
    if cfg.dnn_recurrent is not None:
        check_choice(cfg.dnn_recurrent, "dnn_recurrent", RECURRENT)
    if cfg.dnmf_solver not in ("adam", "mu"):
        raise ParameterError(f"dnmf_solver must be 'adam' or 'mu', got {cfg.dnmf_solver!r}")
    if not cfg.snrs or not all(np.isfinite(float(s)) for s in cfg.snrs):
        raise ParameterError(f"snrs must be finite numbers of dB, got {list(cfg.snrs)}")
    if not cfg.noises:
        raise ParameterError("give at least one noise (a file, or 'babble')")
    if cfg.sr not in (8000, 16000):
        raise ParameterError(f"sr must be 8000 or 16000 (what PESQ accepts), got {cfg.sr}")


# ------------------------------------------------------------------ data
@dataclass
class Corpus:
    """Loaded signals: training utterances by speaker, test utterances, noises split in two."""

    train: dict[str, list[np.ndarray]]
    test: list[tuple[str, np.ndarray]]
    noises: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (train part, test part)


def _speaker_of(path: Path) -> str:
    return path.parent.name


def _utterance_name(path: Path) -> str:
    """The file name without its audio suffixes, in lower case: ``SA1.WAV.wav`` -> ``sa1``."""
    from deepnmf.audio.io import AUDIO_SUFFIXES

    name = path.name.lower()
    while Path(name).suffix in AUDIO_SUFFIXES:
        name = name[: -len(Path(name).suffix)]
    return name


def _distinct(files: list[Path]) -> list[Path]:
    """One file per utterance: a folder's copies of one recording in two formats (some TIMIT
    distributions keep ``SA1.WAV``, the NIST SPHERE original, beside ``SA1.WAV.wav``) count once,
    the first in sorted order."""
    seen: set[tuple[Path, str]] = set()
    out = []
    for f in files:
        key = (f.parent, _utterance_name(f))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _pick_test(files: list[Path], n_test: int, train_files: Sequence[Path] = ()) -> list[Path]:
    """``n_test`` files spread over speakers (round robin in sorted order).

    A test file whose utterance name (:func:`_utterance_name`) a training file also has is taken
    only when the others run out: in TIMIT that is the same sentence read by a training speaker
    (the SA sentences, which every speaker reads), so testing on it would score texts the models
    were trained on, and the first files of every speaker would be the same two sentences.
    """
    seen = {_utterance_name(f) for f in train_files}
    by_speaker: dict[str, list[Path]] = {}
    for f in files:
        by_speaker.setdefault(str(f.parent), []).append(f)
    picked: list[Path] = []
    for allow_shared in (False, True):
        queues = [[f for f in sorted(v) if f not in picked and (allow_shared or _utterance_name(f) not in seen)]
                  for _, v in sorted(by_speaker.items())]
        while len(picked) < n_test and any(queues):
            for q in queues:
                if q and len(picked) < n_test:
                    picked.append(q.pop(0))
    if len(picked) < n_test:
        raise DataError(f"asked for {n_test} test utterances but the test folders hold only {len(picked)}")
    return picked


def load_corpus(cfg: EnhancementConfig) -> Corpus:
    """Read the speech folders and noise files of ``cfg`` (folders are searched recursively)."""
    from deepnmf.audio.io import check_not_silent, list_audio_files, load_audio

    train_files = _distinct(list_audio_files(*cfg.train_speech))
    test_files = _distinct(list_audio_files(*cfg.test_speech))
    overlap = {f.resolve() for f in train_files} & {f.resolve() for f in test_files}
    if overlap:
        raise DataError(f"{len(overlap)} files are in both the training and the test speech, e.g. {sorted(overlap)[0]}")
    train: dict[str, list[np.ndarray]] = {}
    for f in train_files:
        x, _ = load_audio(f, sr=cfg.sr, dtype=np.float64)
        check_not_silent(x, name=str(f))
        train.setdefault(str(f.parent), []).append(x)
    test = []
    for f in _pick_test(test_files, cfg.n_test, train_files):
        x, _ = load_audio(f, sr=cfg.sr, dtype=np.float64)
        check_not_silent(x, name=str(f))
        test.append((f"{_speaker_of(f)}/{f.stem}", x))
    noises = {}
    for spec in cfg.noises:
        name, signal = _noise_signal(spec, train, cfg)
        if name in noises:
            raise ParameterError(f"noise {name!r} is given twice")
        if name == "speech":  # the noise models are named after their noises, beside the speech model
            raise ParameterError(f"a noise cannot be named 'speech' (from {spec}): rename the file")
        noises[name] = _split_noise(name, signal, cfg, max(len(x) for _, x in test))
    return Corpus(train=train, test=test, noises=noises)


def _noise_signal(spec: str | Path, train: dict[str, list[np.ndarray]], cfg: EnhancementConfig) -> tuple[str, np.ndarray]:
    from deepnmf.audio.io import check_not_silent, load_audio
    from deepnmf.audio.mixing import babble

    if str(spec).lower() == "babble":
        voices = [np.concatenate(v) for _, v in sorted(train.items())][: cfg.babble_talkers]
        if len(voices) < 2:
            raise DataError("constructed babble needs at least 2 training speakers (speaker = folder of utterances)")
        return "babble", babble(voices, int(cfg.babble_seconds * cfg.sr), random_state=cfg.random_state)
    x, _ = load_audio(spec, sr=cfg.sr, dtype=np.float64)
    check_not_silent(x, name=f"noise file {spec}")
    return Path(spec).stem, x


def _split_noise(name: str, x: np.ndarray, cfg: EnhancementConfig, longest: int) -> tuple[np.ndarray, np.ndarray]:
    from deepnmf.audio.mixing import split_excerpt

    train, test = split_excerpt(x.size, train_samples=cfg.noise_frames * 128,
                                max_train_fraction=cfg.max_train_fraction)
    if test.stop - test.start < longest:
        raise DataError(
            f"noise {name!r}: its test part ({(test.stop - test.start) / cfg.sr:.1f} s) is shorter than the longest "
            f"test utterance ({longest / cfg.sr:.1f} s); use a longer noise recording"
        )
    return x[train], x[test]


# ---------------------------------------------------------------- models
def _report(progress: Callback | None, stage: str, done: int, total: int, message: str = "") -> None:
    """One progress record: ``done`` of ``total`` units of ``stage``."""
    notify(progress, EpochInfo(done, total, stage=stage, message=message))


def _magnitudes(signals: Sequence[np.ndarray]) -> list[torch.Tensor]:
    from deepnmf.pipelines.enhancement import STFTSettings

    settings = STFTSettings()
    return [settings.stft(x).abs() for x in signals]


def speech_frames(corpus: Corpus, cfg: EnhancementConfig) -> np.ndarray:
    """About ``speech_frames`` random magnitude frames ``(n, n_bins)`` of the training speech."""
    V = torch.cat(_magnitudes([x for utts in corpus.train.values() for x in utts])).numpy()
    rng = np.random.default_rng(cfg.random_state)
    if V.shape[0] > cfg.speech_frames:
        V = V[np.sort(rng.choice(V.shape[0], cfg.speech_frames, replace=False))]
    return V


def noise_frames(corpus: Corpus, cfg: EnhancementConfig, names: Sequence[str]) -> np.ndarray:
    """Magnitude frames ``(n, n_bins)`` of the training parts of ``names`` (at most ``noise_frames`` each)."""
    return torch.cat([_magnitudes([corpus.noises[n][0]])[0][: cfg.noise_frames] for n in names]).numpy()


def _make_dictionary(kind: str, V: np.ndarray, cfg: EnhancementConfig, seed: int):
    """A ``cfg.n_components``-atom dictionary model (``"nmf"`` or ``"vae-nmf"``) fitted on frames ``V`` ``(n, n_bins)``."""
    from sklearn.exceptions import ConvergenceWarning

    from deepnmf.models.factory import make_estimator

    if kind == "nmf":
        with warnings.catch_warnings():  # the paper's fixed budget of iterations: running out of it is the protocol
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_estimator("nmf", cfg.n_components, beta_loss="kullback-leibler", max_iter=cfg.nmf_iter,
                                  random_state=seed).fit(V)
    # a fixed number of epochs: the validation ELBO of the Poisson VAE still improves at epoch 60, beyond the
    # time budget, and the Gaussian's swings by orders of magnitude between epochs (docs/vae-nmf.md)
    return make_estimator("vae-nmf", cfg.n_components, likelihood=cfg.vae_likelihood, max_epochs=cfg.vae_epochs,
                          kl_warmup=cfg.vae_kl_warmup, kl_weight=cfg.vae_kl_weight, init=cfg.vae_init,
                          early_stopping=False, random_state=seed).fit(V)


def _cached_model(folder: Path, recipe: dict[str, Any], build: Callable[[], Any], load: Callable[[Path], Any] | None = None):
    """Load ``folder`` (with ``load``, default :func:`deepnmf.load_model`) if it was made by the same
    ``recipe``, otherwise build, save and record it. Returns ``(model, loaded_from_cache)``.

    The folder is written atomically (:func:`deepnmf.io.model_files.replace_folder`: model and
    ``recipe.json`` into a temporary sibling, then renamed), so a run killed while saving leaves the
    previous cache entry or none, never a model without its recipe or a recipe beside half a model."""
    from deepnmf.exceptions import ModelFileError
    from deepnmf.io.model_files import load_model, replace_folder

    recipe_file = folder / "recipe.json"
    if recipe_file.is_file():
        try:
            if json.loads(recipe_file.read_text()) == recipe:
                return (load or load_model)(folder), True
        except (json.JSONDecodeError, ModelFileError):
            pass  # stale, damaged or old-layout cache: rebuild
    model = build()

    def write(tmp: Path) -> None:
        model.save(tmp)
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")

    replace_folder(write, folder)
    return model, False


def _noise_groups(corpus: Corpus, cfg: EnhancementConfig) -> dict[str, list[str]]:
    """Noise-model name -> the noises it is trained on (one each, or all pooled)."""
    names = list(corpus.noises)
    return {"pooled": names} if cfg.pooled else {n: [n] for n in names}


def build_models(corpus: Corpus, cfg: EnhancementConfig, methods: list[tuple[str, str]],
                 progress: Callback | None = None, *, groups: Sequence[str] | None = None):
    """Fit (or load from the cache) every dictionary and network the methods need.

    With ``cfg.jobs`` above 1 they are first fitted by that many worker processes into the cache
    (:func:`deepnmf.experiments.enhancement_jobs.fit_in_workers`), then loaded from it here.

    Parameters
    ----------
    groups : sequence of str, optional
        Only these noise models' dictionaries and networks (and the speech dictionaries); default all.

    Returns
    -------
    models : dict
        ``(kind, "speech")`` and ``(kind, noise_model_name)`` -> estimator;
        ``(kind, "dnn", noise_model_name)`` -> trained :class:`~deepnmf.pipelines.enhancement.Enhancer`.
    """
    root = Path(cfg.out) / "models"
    kinds = dictionary_kinds(methods)
    every = _noise_groups(corpus, cfg)
    if groups is None and cfg.jobs > 1:
        from deepnmf.experiments.enhancement_jobs import fit_in_workers

        fit_in_workers(corpus, cfg, methods, progress)
    groups = every if groups is None else {g: every[g] for g in groups}
    models: dict[tuple, Any] = {}
    total = len(kinds) * (1 + len(groups)) + sum(len(groups) for k, a in methods if a in NETWORK_ACTIVATIONS)
    done = 0
    for kind in kinds:
        for group, names in [("speech", None), *groups.items()]:
            _report(progress, "models", done, total, dictionary_label(kind, group, names))
            models[(kind, group)] = dictionary_model(corpus, cfg, kind, group, names)
            done += 1
    sharing = [m for m in methods if m[1] in ("dnn", "mask")]  # the fits that may share a training matrix
    for group, names in groups.items():
        # the networks of a noise model train on the same mixtures (same settings and seed; the mask ensemble's
        # first member too): their training matrix is laid out once and kept here for the next ones, the last of
        # which takes it (_LastUse) so that it is freed as soon as that network is trained
        cache: dict = {}
        for kind, act in methods:
            if act not in NETWORK_ACTIVATIONS:
                continue
            if sharing and (kind, act) == sharing[-1]:
                cache = _LastUse(cache)
            _report(progress, "models", done, total, f"{method_name(kind, act)} training ({group})")
            if act == "mask":
                models[("mask", group)] = _mask_network(corpus, cfg, group, names, root, cache)
            elif act == "dnmf":
                models[("dnmf", group)] = _dnmf(corpus, cfg, models, group, names, root)
            else:
                models[(kind, "dnn", group)] = _network(corpus, cfg, models, kind, group, names, root, cache)
            done += 1
    _report(progress, "models", done, total, "done")
    return models


class _LastUse(dict):
    """The training matrices handed to a noise model's last network fit: reading one removes it (its reader then
    holds the only reference) and nothing new is kept (no later fit would read it). Without it, the shared matrix
    of a noise model (1.6 GB for 1000 mixtures) stayed while the mask ensemble's second member laid out its own."""

    def __getitem__(self, key: Any) -> Any:
        return self.pop(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


#: the methods' activation kinds that train a model per noise group after the dictionaries
NETWORK_ACTIVATIONS = ("dnn", "mask", "dnmf")


def dictionary_kinds(methods: list[tuple[str, str]]) -> list[str]:
    """The dictionary kinds (``"nmf"``, ``"vae-nmf"``) the methods use, in :data:`DICTIONARIES` order."""
    return sorted({k for k, a in methods if a != "mask"}, key=DICTIONARIES.index)


def dictionary_label(kind: str, group: str, names: list[str] | None) -> str:
    """``"nmf speech dictionary"`` or ``"nmf noise dictionary (GROUP)"``, for progress records."""
    return f"{kind} speech dictionary" if names is None else f"{kind} noise dictionary ({group})"


def dictionary_model(corpus: Corpus, cfg: EnhancementConfig, kind: str, group: str, names: list[str] | None):
    """The speech dictionary (``names`` None) or the noise dictionary of group ``group`` (trained on the
    noises ``names``), fitted or loaded from ``cfg.out/models/KIND/speech|noise-GROUP``."""
    root = Path(cfg.out) / "models" / kind
    recipe = {"n_components": cfg.n_components, "sr": cfg.sr, "random_state": cfg.random_state,
              "stft": [512, 128, "hamming"], "kind": kind,
              **({"nmf_iter": cfg.nmf_iter} if kind == "nmf" else {
                  "vae_epochs": cfg.vae_epochs, "likelihood": cfg.vae_likelihood, "kl_warmup": cfg.vae_kl_warmup,
                  **({"init": cfg.vae_init} if cfg.vae_init != "random" else {}),
                  **({"kl_weight": float(cfg.vae_kl_weight)} if cfg.vae_kl_weight != 1.0 else {})})}
    if names is None:
        recipe.update(files=sorted(corpus.train), frames=cfg.speech_frames)
        model, _ = _cached_model(root / "speech", recipe,
                                 lambda: _make_dictionary(kind, speech_frames(corpus, cfg), cfg, cfg.random_state))
        return model
    recipe.update(noises=names, frames=cfg.noise_frames, noise_samples=[int(corpus.noises[n][0].size) for n in names])
    model, _ = _cached_model(root / f"noise-{group}", recipe,
                             lambda: _make_dictionary(kind, noise_frames(corpus, cfg, names), cfg, cfg.random_state + 1))
    return model


def _enhancer(cfg: EnhancementConfig, models, kind: str, group: str, activations: str):
    from deepnmf.pipelines.enhancement import Enhancer

    power = DEFAULT_GAINS[activations][0] if cfg.power is None else cfg.power
    floor = DEFAULT_GAINS[activations][1] if cfg.floor is None else cfg.floor
    return Enhancer(models[(kind, "speech")], models[(kind, group)], activations=activations, power=power,
                    floor=floor, exponent=_exponent(cfg, activations), sparsity=cfg.sparsity, max_iter=cfg.nmf_iter)


def _exponent(cfg: EnhancementConfig, activations: str) -> float:
    """The gain exponent at enhancement time of an activation method (or ``"mask"``)."""
    return DEFAULT_EXPONENTS[activations] if cfg.exponent is None else float(cfg.exponent)


def _network(corpus: Corpus, cfg: EnhancementConfig, models, kind: str, group: str, names: list[str], root: Path,
             cache: dict | None = None):
    """The ``kind+dnn`` enhancer of a noise group, its activation network trained (or cached in ``dnn-GROUP``;
    ``cache``: training matrices shared with the group's other networks, ``Enhancer.fit_network(cache=)``)."""
    from deepnmf.nn.networks import FrameNetwork

    enh = _enhancer(cfg, models, kind, group, "dnn")
    recipe = {"fingerprints": enh.fingerprints(), "epochs": cfg.dnn_epochs, "copies": cfg.dnn_copies,
              "context": cfg.dnn_context, "hidden": list(cfg.dnn_hidden), "snr_range": [min(cfg.snrs), max(cfg.snrs)],
              "sparsity": cfg.sparsity, "random_state": cfg.random_state, "noises": names, **_network_recipe(cfg, "dnn")}

    def build():
        speech = [x for utts in corpus.train.values() for x in utts]
        enh.fit_network(speech, [corpus.noises[n][0] for n in names], objective=cfg.dnn_objective,
                        training=network_training(cfg, "dnn"), random_state=cfg.random_state, cache=cache)
        enh.network.metadata["loss"] = enh.network_training_.val_loss
        return enh.network

    net, _ = _cached_model(root / kind / f"dnn-{group}", recipe, build, load=FrameNetwork.load)
    enh.set_network(net)
    return enh


def network_training(cfg: EnhancementConfig, which: str) -> NetworkTraining:
    """How the experiment trains its activation (``which="dnn"``) or mask (``"mask"``) networks: the
    ``dnn_*`` settings, the mask networks' own mixtures and epochs (``mask_copies``, ``mask_epochs``,
    ``mask_max_mixtures``, where given); the discriminative weight and the loss units apply to the
    signal objectives only."""
    from deepnmf._utils import check_choice

    check_choice(which, "which", ("dnn", "mask"))
    objective = cfg.dnn_objective if which == "dnn" else cfg.mask_objective
    signal = objective in ("signal", "phase")
    copies, epochs, max_mixtures = cfg.dnn_copies, cfg.dnn_epochs, cfg.dnn_max_mixtures
    if which == "mask":  # the mask networks' own settings, where given
        copies = copies if cfg.mask_copies is None else cfg.mask_copies
        epochs = epochs if cfg.mask_epochs is None else cfg.mask_epochs
        max_mixtures = max_mixtures if cfg.mask_max_mixtures is None else cfg.mask_max_mixtures
    return NetworkTraining(
        snr_range=(float(min(cfg.snrs)), float(max(cfg.snrs))), n_copies=copies, max_mixtures=max_mixtures,
        context=cfg.dnn_context, context_bands=cfg.dnn_context_bands, hidden=tuple(cfg.dnn_hidden), recurrent=cfg.dnn_recurrent,
        noise_aware=bool(cfg.dnn_noise_aware), noise_window=cfg.dnn_noise_window, epochs=epochs,
        batch_size=cfg.dnn_batch_size, lr=cfg.dnn_lr, lr_schedule=cfg.dnn_lr_schedule,
        discriminative=cfg.dnn_discriminative if signal else 0.0, loss_scale=cfg.dnn_loss_scale if signal else "mixture",
    )


def _network_recipe(cfg: EnhancementConfig, which: str) -> dict[str, Any]:
    """The part of an activation (``"dnn"``) or mask (``"mask"``) network's cache recipe that differs from
    the original MLP with its target loss (so caches made before these settings existed stay valid)."""
    objective = cfg.dnn_objective if which == "dnn" else cfg.mask_objective
    settings: dict[str, Any] = {}
    if objective != ("activations" if which == "dnn" else "mask"):
        settings["objective"] = objective
    if which == "mask" and cfg.mask_output != "sigmoid":
        settings["output"] = cfg.mask_output
    if which == "mask" and cfg.mask_networks != 1:
        settings["n_networks"] = cfg.mask_networks
    training, defaults = network_training(cfg, which), NetworkTraining()
    for name in ("recurrent", "max_mixtures", "noise_aware", "noise_window", "batch_size", "lr", "lr_schedule",
                 "discriminative", "loss_scale", "context_bands"):
        if getattr(training, name) != getattr(defaults, name):
            settings[name] = getattr(training, name)
    return settings


def _mask_network(corpus: Corpus, cfg: EnhancementConfig, group: str, names: list[str], root: Path,
                  cache: dict | None = None):
    """The DNN mask baseline of a noise group, trained (or cached in ``dnn-mask/mask-GROUP``; ``cache`` as
    :func:`_network`)."""
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    training = network_training(cfg, "mask")
    recipe = {"train": sorted(corpus.train), "noises": names, "noise_samples": [int(corpus.noises[n][0].size) for n in names],
              "epochs": training.epochs, "copies": training.n_copies, "context": cfg.dnn_context,
              "hidden": list(cfg.dnn_hidden), "snr_range": [min(cfg.snrs), max(cfg.snrs)], "random_state": cfg.random_state,
              **_network_recipe(cfg, "mask")}

    def build():
        speech = [x for utts in corpus.train.values() for x in utts]
        return MaskEnhancer().fit(speech, [corpus.noises[n][0] for n in names], objective=cfg.mask_objective,
                                  output=cfg.mask_output, n_networks=cfg.mask_networks,
                                  training=training, random_state=cfg.random_state, cache=cache)

    enh, _ = _cached_model(root / MASK_METHOD / f"mask-{group}", recipe, build, load=MaskEnhancer.load)
    enh.exponent = _exponent(cfg, "mask")  # an enhancement setting, not part of the trained model
    return enh


def _dnmf(corpus: Corpus, cfg: EnhancementConfig, models, group: str, names: list[str], root: Path):
    """The discriminative NMF baseline of a noise group, trained (or cached in ``nmf/dnmf-GROUP``)."""
    from deepnmf.pipelines.enhancement import _fingerprint
    from deepnmf.pipelines.enhancement_baselines import DNMFEnhancer

    enh = DNMFEnhancer(models[("nmf", "speech")], models[("nmf", group)], floor=0.0 if cfg.floor is None else cfg.floor,
                       sparsity=cfg.sparsity, max_epochs=cfg.dnmf_epochs, solver=cfg.dnmf_solver)
    recipe = {"dictionaries": [_fingerprint(enh.H_speech), _fingerprint(enh.H_noise)], "noises": names,
              "sparsity": cfg.sparsity, "epochs": enh.max_epochs, "snr_range": [min(cfg.snrs), max(cfg.snrs)],
              "max_mixtures": cfg.dnmf_max_mixtures,
              **({"solver": cfg.dnmf_solver} if cfg.dnmf_solver != "adam" else {}),  # adam caches keep their key
              "random_state": cfg.random_state}

    def build():
        speech = [x for utts in corpus.train.values() for x in utts]
        return enh.fit(speech, [corpus.noises[n][0] for n in names], snr_range=(min(cfg.snrs), max(cfg.snrs)),
                       max_mixtures=cfg.dnmf_max_mixtures, random_state=cfg.random_state)

    cached, _ = _cached_model(root / "nmf" / f"dnmf-{group}", recipe, build, load=DNMFEnhancer.load)
    return cached


# ------------------------------------------------------------ evaluation
def score(clean: np.ndarray, noise: np.ndarray, estimate: np.ndarray, sr: int) -> dict[str, float]:
    """SDR/SIR/SAR of the speech estimate (both references passed), PESQ nb/wb, STOI
    (:func:`deepnmf.metrics.enhancement_scores`)."""
    from deepnmf.metrics import enhancement_scores

    return enhancement_scores(clean, noise, estimate, sr)


def evaluate(corpus: Corpus, cfg: EnhancementConfig, methods, models, progress: Callback | None = None) -> list[dict]:
    """Score ``noisy`` and every method on every (noise, SNR, utterance); one row per cell.

    With ``cfg.jobs`` above 1 the scores (PESQ, BSS Eval, STOI: most of the time) are computed by that many
    worker processes while this one enhances the next mixtures; the rows are the same as with one.
    """
    from deepnmf.audio.mixing import mix_at_snr, noise_excerpt

    groups = _noise_groups(corpus, cfg)
    group_of = {n: g for g, names in groups.items() for n in names}
    enhancers = {}
    for kind, act in methods:
        for n in corpus.noises:
            g = group_of[n]
            if act in ("mask", "dnmf"):
                enhancers[(method_name(kind, act), n)] = models[(act, g)]
            else:
                enhancers[(method_name(kind, act), n)] = (models[(kind, "dnn", g)] if act == "dnn"
                                                          else _enhancer(cfg, models, kind, g, act))
    names = ["noisy"] + [method_name(k, a) for k, a in methods]
    total = len(corpus.noises) * len(cfg.snrs) * len(corpus.test)
    pending: list[tuple[tuple, str, Any]] = []  # (cell, utterance, scores or their future), in the order of the loops
    ready = 0  # leading entries of pending whose scores are done
    with _scoring(cfg.jobs) as submit:
        for i, (noise_name, (_, test_part)) in enumerate(corpus.noises.items()):
            for j, (utt, clean) in enumerate(corpus.test):
                excerpt = noise_excerpt(test_part, clean.size, random_state=cfg.random_state * 1000 + 100 * i + j)
                for snr in cfg.snrs:
                    y, s, n = mix_at_snr(clean, excerpt, float(snr))
                    for name in names:
                        est = y if name == "noisy" else enhancers[(name, noise_name)].enhance(y)
                        pending.append(((name, noise_name, float(snr)), utt, submit(s, n, est, cfg.sr)))
                    while ready < len(pending) and _done(pending[ready][2]):
                        ready += 1
                    if ready >= len(names):  # (a record of 0 units done with a message is a notice)
                        _report(progress, "evaluate", ready // len(names), total, f"{noise_name} {snr:+g} dB {utt}")
        cells: dict[tuple, list[dict]] = {}
        for k, (cell, utt, scores) in enumerate(pending, 1):
            cells.setdefault(cell, []).append({**(scores if isinstance(scores, dict) else scores.result()), "utterance": utt})
            if k % len(names) == 0 and not isinstance(scores, dict):
                _report(progress, "evaluate", k // len(names), total, "scoring")
    return [_row(name, noise, snr, scores) for (name, noise, snr), scores in cells.items()]


@contextmanager
def _scoring(jobs: int):
    """``submit(clean, noise, estimate, sr)``: the scores (:func:`score`) now when ``jobs`` is 1, else their future
    from a pool of ``jobs`` worker processes (:func:`deepnmf.pipelines.batch.process_pool`)."""
    if jobs == 1:
        yield score
        return
    from deepnmf._threads import limit_threads
    from deepnmf.pipelines.batch import process_pool, worker_died

    # this process enhances on one thread: with the workers on every core, threads synchronising at each
    # operation (torch's, the blocked multiplicative updates') wait on descheduled peers (no faster than jobs=1)
    with process_pool(jobs) as pool, limit_threads(1):
        try:
            yield lambda *args: pool.submit(score, *args)
        except BrokenProcessPool as err:
            raise worker_died(err, "run again with --jobs 1 to score in this process") from err


def _done(scores: Any) -> bool:
    """Whether a pending score (a dict, or the future of one) is there."""
    return isinstance(scores, dict) or scores.done()


def _row(method: str, noise: str, snr: float, scores: list[dict]) -> dict[str, Any]:
    """One results row: means, 95% bootstrap intervals over the utterances, and the per-utterance values."""
    from deepnmf.metrics import mean_ignoring_missing
    from deepnmf.stats import bootstrap_ci

    row: dict[str, Any] = {"method": method, "noise": noise, "snr": snr}
    for key in METRICS:
        value = mean_ignoring_missing([s[key] for s in scores])
        row[key] = None if math.isnan(value) else value
        ci = bootstrap_ci([s[key] for s in scores])
        row[f"{key}_ci95"] = None if ci is None else list(ci)
    row["n_utterances"] = len(scores)
    row["utterances"] = [s.get("utterance", str(i)) for i, s in enumerate(scores)]
    row["per_utterance"] = {key: [None if not math.isfinite(s[key]) else float(s[key]) for s in scores] for key in METRICS}
    row["pesq_missing"] = sum(1 for s in scores if math.isnan(s["pesq"]))
    return row


# ---------------------------------------------------------------- runner
def run_enhancement(cfg: EnhancementConfig, progress: Callback | None = None) -> list[dict]:
    """Run the whole protocol and write ``results.json``, ``results.csv``,
    ``results.md``, ``sdr_improvement.png`` and ``run.json`` into ``cfg.out``.

    ``progress`` receives :class:`~deepnmf.callbacks.EpochInfo` records with
    ``stage`` ``"data"``, ``"workers"`` (``cfg.jobs`` above 1: models fitted by
    the worker processes), ``"models"`` or ``"evaluate"``, ``epoch`` units done
    of ``max_epochs`` and a ``message``.

    Returns
    -------
    rows : list of dict
        One per (method, noise, SNR) with the keys of :data:`ROW_KEYS`
        (plus ``pesq_wb``, ``pesq_missing``, ``<metric>_ci95`` — a 95%
        bootstrap interval over the utterances — ``utterances`` and
        ``per_utterance``, the values behind the means); missing metrics are ``None``.
    """
    from deepnmf.experiments.enhancement_report import write_outputs

    _check_config(cfg)
    methods = parse_methods(cfg.methods)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.perf_counter()
    _report(progress, "data", 0, 1, "reading speech and noise")
    corpus = load_corpus(cfg)
    times["data_s"] = time.perf_counter() - t0
    models = build_models(corpus, cfg, methods, progress)
    times["models_s"] = time.perf_counter() - t0 - times["data_s"]
    rows = evaluate(corpus, cfg, methods, models, progress)
    times["evaluate_s"] = time.perf_counter() - t0 - times["data_s"] - times["models_s"]
    times["total_s"] = time.perf_counter() - t0
    info = {"config": {k: (list(map(str, v)) if isinstance(v, (list, tuple)) else str(v) if isinstance(v, Path) else v)
                       for k, v in asdict(cfg).items()},
            "test_utterances": [u for u, _ in corpus.test], "train_speakers": sorted(corpus.train),
            "noises": list(corpus.noises), "seconds": times,
            "gains": {method_name(k, a): ({"power": DEFAULT_GAINS[a][0] if cfg.power is None else cfg.power,
                                           "floor": DEFAULT_GAINS[a][1] if cfg.floor is None else cfg.floor}
                                          if a != "mask" else {}) | {"exponent": _exponent(cfg, a)}
                      for k, a in methods if a != "dnmf"}}
    write_outputs(out, rows, info, pooled=cfg.pooled)
    return rows
