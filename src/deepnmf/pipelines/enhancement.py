r"""Supervised speech enhancement with a speech and a noise dictionary.

Orientation: spectrograms are ``(n_frames, n_bins)``; dictionaries are
``(n_components, n_bins)`` (``components_``); activations are
``(n_frames, n_components)``, so a source estimate is ``H @ W``.

Pipeline, for a noisy signal ``y`` with STFT ``Y`` (512-point Hamming
window, hop 128 at 16 kHz by default):

1. activations ``[H_s, H_n]`` of ``|Y|`` by one of

   - ``"mu"``: multiplicative updates with the stacked dictionary
     ``[W_s; W_n]`` frozen (:meth:`deepnmf.NMF.from_components`), optionally
     with an L1 penalty on the activations;
   - ``"dnn"``: the activation network of Kang et al. (2015)
     (:class:`deepnmf.nn.networks.FrameNetwork`), trained by
     :meth:`Enhancer.fit_network` on pairs (noisy frame with context ->
     activations of the clean speech and of the noise against their own
     frozen dictionaries);
   - ``"encoder"``: the posterior means given by the VAE-NMF encoders of
     the speech and noise models (VAE-NMF dictionaries only);

2. the Wiener-like gain, floored at ``floor``,

   .. math::

       G = \max\Big(\frac{S^p}{S^p + N^p}, g_{min}\Big), \qquad
       S = H_s W_s, \; N = H_n W_n,

3. ``G * Y`` inverted with the noisy phase.

Speech and noise models may be any fitted estimator with ``components_``
(:class:`deepnmf.NMF`, :class:`deepnmf.VAENMF`, ...) or an
:class:`deepnmf.ImplicitNMF`, sampled at the STFT bins.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from deepnmf._utils import check_choice, check_nonneg_float, check_positive_int
from deepnmf.exceptions import DataError, ModelFileError, ParameterError

__all__ = ["ACTIVATIONS", "Enhancer", "STFTSettings", "frozen_activations", "training_mixtures", "wiener_gain"]

ACTIVATIONS = ("mu", "dnn", "encoder")
_EPS = 1e-10
_CONFIG = "enhancer.json"


@dataclass(frozen=True)
class STFTSettings:
    """Front end of the enhancement pipeline (the reference setup by default)."""

    sr: int = 16000
    n_fft: int = 512
    hop: int = 128
    window: str = "hamming"

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def stft(self, x: Any) -> torch.Tensor:
        """Complex STFT ``(n_frames, n_bins)`` of a signal ``(n_samples,)``."""
        from deepnmf.audio.tf import stft

        return stft(torch.as_tensor(np.asarray(x, dtype=np.float32)), n_fft=self.n_fft, hop=self.hop, window=self.window)

    def istft(self, S: torch.Tensor, length: int) -> np.ndarray:
        """Signal ``(length,)`` from a complex STFT ``(n_frames, n_bins)``."""
        from deepnmf.audio.tf import istft

        return istft(S, n_fft=self.n_fft, hop=self.hop, window=self.window, length=length).cpu().numpy()


# ----------------------------------------------------------------- maths
def wiener_gain(S: torch.Tensor, N: torch.Tensor, *, power: float = 2.0, floor: float = 0.0) -> torch.Tensor:
    """Gain ``max(S^p / (S^p + N^p), floor)`` from speech and noise magnitude estimates.

    Parameters
    ----------
    S, N : torch.Tensor [shape=(n_frames, n_bins)]
        Nonnegative speech and noise magnitude estimates.
    power : float
        Exponent ``p`` (2: Wiener-like, 1: magnitude ratio).
    floor : float in [0, 1)
        Lowest gain (limits musical noise and speech distortion).

    Returns
    -------
    G : torch.Tensor [shape=(n_frames, n_bins)], in ``[floor, 1]``
        Where both estimates are zero the gain is 1 (nothing to remove).
    """
    if not power > 0:
        raise ParameterError(f"power must be > 0, got {power}")
    if not 0 <= floor < 1:
        raise ParameterError(f"floor must be in [0, 1), got {floor}")
    Sp, Np = S.clamp(min=0).pow(power), N.clamp(min=0).pow(power)
    total = Sp + Np
    G = torch.where(total > 0, Sp / total.clamp(min=torch.finfo(total.dtype).tiny), torch.ones_like(total))
    return G.clamp(min=floor, max=1.0)


def frozen_activations(
    V: torch.Tensor, W: torch.Tensor, *, beta_loss: str | float = "kullback-leibler", max_iter: int = 200, sparsity: float = 0.0
) -> torch.Tensor:
    """Activations of ``V`` against a frozen dictionary by multiplicative updates.

    Parameters
    ----------
    V : torch.Tensor [shape=(n_frames, n_bins)]
    W : torch.Tensor [shape=(n_components, n_bins)]
    sparsity : float
        L1 penalty on the activations (scikit-learn's ``alpha_W`` with ``l1_ratio=1``).

    Returns
    -------
    H : torch.Tensor [shape=(n_frames, n_components)]
    """
    from deepnmf.models.nmf import NMF

    est = NMF.from_components(W, beta_loss=beta_loss, max_iter=max_iter, tol=0.0, alpha_W=sparsity, l1_ratio=1.0)
    return est.transform(V.to(W.dtype))


def _fingerprint(W: torch.Tensor) -> str:
    """Short SHA-256 of a dictionary (pairs a network with the dictionaries it was trained for)."""
    data = np.ascontiguousarray(W.detach().cpu().numpy().astype(np.float32))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def _dictionary(model: Any, settings: STFTSettings, name: str) -> torch.Tensor:
    from deepnmf.pipelines.separation import atoms_at

    if not (hasattr(model, "components_") or hasattr(model, "dictionary_at")):
        raise ParameterError(f"the {name} model must be a fitted estimator with components_, got {type(model).__name__}")
    try:
        W = atoms_at(model, n_fft=settings.n_fft, sr=settings.sr)
    except DataError as err:
        raise DataError(f"{name} model: {err}") from err
    if bool((W < 0).any()) or not bool(torch.isfinite(W).all()):
        raise DataError(f"the {name} dictionary must be finite and nonnegative")
    return W.to(torch.float32)


# --------------------------------------------------------------- enhancer
class Enhancer:
    """Speech enhancement with a speech and a noise dictionary.

    Parameters
    ----------
    speech_model, noise_model : fitted estimator
        Anything with ``components_`` ``(n_components, n_bins)`` learned on
        magnitude spectrograms with ``stft`` (NMF, VAENMF...), or an
        ImplicitNMF.
    activations : {"mu", "dnn", "encoder"}
        How the activations of the noisy spectrogram are found.
    power : float
        Gain exponent ``p`` in ``S^p / (S^p + N^p)``.
    floor : float in [0, 1)
        Lowest gain.
    sparsity : float
        L1 penalty on the activations for ``"mu"`` (and the network's targets).
    beta_loss : str or float
        Divergence of the multiplicative updates.
    max_iter : int
        Multiplicative updates per signal.
    stft : STFTSettings
    network : FrameNetwork, optional
        A trained activation network (``"dnn"``); see :meth:`fit_network`.

    Examples
    --------
    >>> enh = Enhancer(speech_nmf, noise_nmf, activations="mu")     # doctest: +SKIP
    >>> clean_estimate = enh.enhance(noisy)                         # doctest: +SKIP
    """

    def __init__(
        self,
        speech_model: Any,
        noise_model: Any,
        *,
        activations: str = "mu",
        power: float = 2.0,
        floor: float = 0.0,
        sparsity: float = 0.0,
        beta_loss: str | float = "kullback-leibler",
        max_iter: int = 200,
        stft: STFTSettings = STFTSettings(),
        network: Any = None,
    ) -> None:
        check_choice(activations, "activations", ACTIVATIONS)
        self.activations = activations
        self.power = float(power)
        self.floor = float(floor)
        wiener_gain(torch.ones(1), torch.ones(1), power=self.power, floor=self.floor)  # validates both
        self.sparsity = check_nonneg_float(sparsity, "sparsity")
        self.beta_loss = beta_loss
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.stft = stft
        self.speech_model, self.noise_model = speech_model, noise_model
        self.W_speech = _dictionary(speech_model, stft, "speech")
        self.W_noise = _dictionary(noise_model, stft, "noise")
        if self.W_speech.shape[1] != self.W_noise.shape[1]:
            raise DataError(
                f"the speech dictionary has {self.W_speech.shape[1]} bins but the noise dictionary has "
                f"{self.W_noise.shape[1]}; both must be learned with the same STFT"
            )
        if activations == "encoder":
            for name, model in (("speech", speech_model), ("noise", noise_model)):
                if not hasattr(model, "posterior_params"):
                    raise ParameterError(
                        f"activations='encoder' needs VAE-NMF models; the {name} model is a {type(model).__name__}"
                    )
        self.network = None  # the "dnn" network: passed here or trained by fit_network
        if network is not None:
            self.set_network(network)

    # ---------------------------------------------------------- pieces
    @property
    def n_speech(self) -> int:
        return int(self.W_speech.shape[0])

    @property
    def n_noise(self) -> int:
        return int(self.W_noise.shape[0])

    def fingerprints(self) -> dict[str, str]:
        """Checksums of the two dictionaries (a network is only valid for these)."""
        return {"speech": _fingerprint(self.W_speech), "noise": _fingerprint(self.W_noise)}

    def set_network(self, network: Any, state: dict[str, Any] | None = None) -> None:
        """Attach a trained activation network, checking it fits these dictionaries."""
        cfg = network.config
        if cfg["output"] != "softplus" or cfg["n_outputs"] != self.n_speech + self.n_noise or cfg["n_bins"] != self.stft.n_bins:
            raise ModelFileError(
                f"the activation network maps {cfg['n_bins']} bins to {cfg['n_outputs']} outputs, but these "
                f"dictionaries need {self.stft.n_bins} bins -> {self.n_speech} + {self.n_noise} activations"
            )
        if state and state.get("fingerprints") and state["fingerprints"] != self.fingerprints():
            raise ModelFileError(
                "the activation network was trained for other speech/noise dictionaries than the ones given; "
                "pass the model folders it was trained with or retrain it"
            )
        self.network = network

    def targets(self, speech_mag: torch.Tensor, noise_mag: torch.Tensor) -> torch.Tensor:
        """Training targets ``[H_s, H_n]`` ``(n_frames, n_speech + n_noise)``: clean speech and
        noise magnitudes ``(n_frames, n_bins)`` against their own frozen dictionaries."""
        Hs = self._frozen(speech_mag, self.W_speech)
        Hn = self._frozen(noise_mag, self.W_noise)
        return torch.cat([Hs, Hn], dim=1)

    def _frozen(self, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return frozen_activations(V, W, beta_loss=self.beta_loss, max_iter=self.max_iter, sparsity=self.sparsity)

    def estimate_activations(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech and noise activations of a noisy magnitude spectrogram.

        Parameters
        ----------
        magnitude : torch.Tensor [shape=(n_frames, n_bins)]

        Returns
        -------
        H_speech : torch.Tensor [shape=(n_frames, n_speech)]
        H_noise : torch.Tensor [shape=(n_frames, n_noise)]
        """
        if self.activations == "mu":
            H = self._frozen(magnitude, torch.cat([self.W_speech, self.W_noise]))
        elif self.activations == "dnn":
            if self.network is None:
                raise ParameterError("activations='dnn' needs a trained network: call fit_network or pass network=")
            H = self.network.predict(magnitude.float())
        else:
            Hs = torch.as_tensor(self.speech_model.transform(magnitude.float().numpy()), dtype=torch.float32)
            Hn = torch.as_tensor(self.noise_model.transform(magnitude.float().numpy()), dtype=torch.float32)
            H = torch.cat([Hs, Hn], dim=1)
        return H[:, : self.n_speech].float(), H[:, self.n_speech :].float()

    def estimate_magnitudes(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``S = H_s W_s`` and ``N = H_n W_n``, both ``(n_frames, n_bins)``."""
        Hs, Hn = self.estimate_activations(magnitude)
        return Hs @ self.W_speech, Hn @ self.W_noise

    def gain(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The gain ``(n_frames, n_bins)`` applied to the noisy STFT."""
        S, N = self.estimate_magnitudes(magnitude)
        return wiener_gain(S, N, power=self.power, floor=self.floor)

    # ------------------------------------------------------------ signals
    def enhance(self, noisy: Any, *, return_gain: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Enhance a noisy signal.

        Parameters
        ----------
        noisy : array-like [shape=(n_samples,)]
            At the sampling rate of ``stft`` (``stft.sr``).
        return_gain : bool
            Also return the gain ``(n_frames, n_bins)``.

        Returns
        -------
        enhanced : np.ndarray [shape=(n_samples,)]
        gain : np.ndarray [shape=(n_frames, n_bins)], if ``return_gain``
        """
        return _apply_gain(self.stft, noisy, self.gain, return_gain)

    # ----------------------------------------------------------- training
    def fit_network(
        self,
        speech: Sequence[Any],
        noise: Any,
        *,
        snr_range: tuple[float, float] = (-5.0, 10.0),
        n_copies: int = 1,
        context: int = 2,
        hidden: Sequence[int] = (256, 256),
        epochs: int = 12,
        batch_size: int = 128,
        lr: float = 1e-3,
        random_state: Any = None,
        callback: Callable | None = None,
    ) -> "Enhancer":
        """Train the activation network on generated noisy mixtures.

        Each training utterance is mixed ``n_copies`` times with a random
        excerpt of ``noise`` at an SNR drawn uniformly from ``snr_range``;
        the targets are the activations of the clean speech and of the scaled
        noise against their own frozen dictionaries.

        Parameters
        ----------
        speech : sequence of array-like [shape=(n_samples_i,)]
            Clean training utterances (not the test speakers).
        noise : array-like [shape=(n_noise_samples,)] or sequence of them
            Training noise (the training part of each noise recording).
        callback : callable, optional
            ``callback(stage, done, total)`` while making pairs, then
            ``callback("epoch", epoch, train_loss, val_loss)`` per epoch.

        Returns
        -------
        self
        """
        from deepnmf.nn.networks import FrameNetwork, train_frame_network

        inputs, targets = self._training_pairs(speech, noise, snr_range, n_copies, random_state, callback)
        net = FrameNetwork(self.stft.n_bins, self.n_speech + self.n_noise, context=context, hidden=hidden)
        epoch_cb = None if callback is None else (lambda e, tr, va: callback("epoch", e, tr, va))
        self.network_training_ = train_frame_network(
            net, inputs, targets, epochs=epochs, batch_size=batch_size, lr=lr, random_state=random_state, callback=epoch_cb
        )
        self.network = net
        self.activations = "dnn"
        return self

    def _training_pairs(self, speech, noise, snr_range, n_copies, random_state, callback):
        inputs, targets = [], []
        for Y, S, N in training_mixtures(speech, noise, self.stft, snr_range=snr_range, n_copies=n_copies,
                                         random_state=random_state, callback=callback):
            inputs.append(Y)
            targets.append(self.targets(S, N))
        return inputs, targets

    # -------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the speech and noise models, the network (if any) and ``enhancer.json``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in (("speech", self.speech_model), ("noise", self.noise_model)):
            if not hasattr(model, "save"):
                raise ParameterError(f"the {name} model ({type(model).__name__}) cannot be saved")
            model.save(folder / name)
        if self.network is not None:
            self.network.save(folder / "network", extra={"fingerprints": self.fingerprints()})
        (folder / _CONFIG).write_text(json.dumps(self.config(), indent=2) + "\n")
        return folder

    def config(self) -> dict[str, Any]:
        """Settings as JSON (without the models)."""
        return {"activations": self.activations, "power": self.power, "floor": self.floor,
                "sparsity": self.sparsity, "beta_loss": self.beta_loss, "max_iter": self.max_iter,
                "stft": asdict(self.stft), "fingerprints": self.fingerprints()}

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "Enhancer":
        """Read a folder written by :meth:`save`; keyword arguments override saved settings."""
        folder = Path(path)
        try:
            config = json.loads((folder / _CONFIG).read_text())
        except FileNotFoundError as err:
            raise ModelFileError(f"{folder} is not an enhancer folder (no {_CONFIG})") from err
        except json.JSONDecodeError as err:
            raise ModelFileError(f"{folder / _CONFIG} is not valid JSON: {err}") from err
        network = folder / "network" if (folder / "network").is_dir() else None
        return cls.from_folders(folder / "speech", folder / "noise", network=network, **{**_settings(config), **overrides})

    @classmethod
    def from_folders(
        cls, speech: str | Path, noise: str | Path, *, network: str | Path | None = None, **settings: Any
    ) -> "Enhancer":
        """Build from saved model folders (``deepnmf enhance --speech-model/--noise-model``)."""
        from deepnmf.io.model_files import load_any
        from deepnmf.nn.networks import FrameNetwork

        speech_model, noise_model = load_any(speech), load_any(noise)
        net, state = (None, None) if network is None else FrameNetwork.load(network)
        if net is not None and "activations" not in settings:
            settings["activations"] = "dnn"
        if settings.get("activations") == "dnn" and net is None:
            raise ParameterError("activations='dnn' needs the trained network folder (--network)")
        enh = cls(speech_model, noise_model, **settings)
        if net is not None:
            enh.set_network(net, state)
        return enh


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("activations", "power", "floor", "sparsity", "beta_loss", "max_iter")
    out = {k: config[k] for k in keys if k in config}
    if "stft" in config:
        try:
            out["stft"] = STFTSettings(**config["stft"])
        except TypeError as err:
            raise ModelFileError(f"bad STFT settings in {_CONFIG}: {err}") from err
    return out


# ---------------------------------------------------------- shared helpers
def _apply_gain(stft: STFTSettings, noisy: Any, gain_fn: Callable, return_gain: bool):
    """Check a noisy signal, multiply its STFT by ``gain_fn(|Y|)`` and invert with the noisy phase."""
    from deepnmf.audio.io import check_not_silent

    y = np.asarray(noisy, dtype=np.float32)
    if y.ndim != 1:
        raise DataError(f"the noisy signal must be 1-D (mono), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError("the noisy signal contains NaN or infinite samples")
    check_not_silent(y, name="the noisy signal")
    Y = stft.stft(y)
    G = gain_fn(Y.abs())
    out = stft.istft(Y * G.to(Y.real.dtype), len(y)).astype(np.float64)
    return (out, G.numpy()) if return_gain else out


def training_mixtures(
    speech: Sequence[Any], noise: Any, stft: STFTSettings, *, snr_range: tuple[float, float] = (-5.0, 10.0),
    n_copies: int = 1, random_state: Any = None, callback: Callable | None = None,
):
    """Generate magnitude spectrograms ``(|Y|, |S|, |N|)``, each ``(n_frames, n_bins)``, of training mixtures.

    Each utterance is mixed ``n_copies`` times with a random excerpt of a
    random noise at an SNR drawn uniformly from ``snr_range``.
    """
    from deepnmf.audio.mixing import _numpy_rng, mix_at_snr, noise_excerpt

    single = isinstance(noise, np.ndarray) and noise.ndim == 1
    noises = [np.asarray(n, dtype=np.float64) for n in ([noise] if single else noise)]
    lo, hi = map(float, snr_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ParameterError(f"snr_range must be (low, high) with low <= high, got {snr_range}")
    if len(speech) == 0 or not noises:
        raise DataError("training needs at least one clean utterance and one noise signal")
    rng = _numpy_rng(random_state)
    total = len(speech) * check_positive_int(n_copies, "n_copies")
    for i in range(total):
        s = np.asarray(speech[i % len(speech)], dtype=np.float64)
        n = noise_excerpt(noises[int(rng.integers(len(noises)))], s.size, random_state=rng)
        y, s, n = mix_at_snr(s, n, float(rng.uniform(lo, hi)), peak=None)
        yield tuple(stft.stft(v).abs() for v in (y, s, n))
        if callback is not None:
            callback("pairs", i + 1, total)
