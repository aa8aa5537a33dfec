r"""Supervised speech enhancement with a speech and a noise dictionary.

Orientation (the package's letters, as scikit-learn's): spectrograms are
``X`` ``(n_frames, n_bins)``; a dictionary is ``H`` ``(n_components, n_bins)``
(``components_``); activations are ``W`` ``(n_frames, n_components)``, so a
source estimate is ``W @ H``.

Pipeline, for a noisy signal ``y`` with STFT ``Y`` (512-point Hamming
window, hop 128 at 16 kHz by default):

1. activations ``[W_s, W_n]`` of ``|Y|`` by one of

   - ``"mu"``: multiplicative updates with the stacked dictionary
     ``[H_s; H_n]`` frozen (:meth:`deepnmf.NMF.from_components`), optionally
     with an L1 penalty on the activations;
   - ``"dnn"``: the activation network of Kang et al. (2015)
     (:class:`deepnmf.nn.networks.FrameNetwork`), trained by
     :meth:`Enhancer.fit_network` on pairs (noisy frame with context ->
     activations of the clean speech and of the noise against their own
     frozen dictionaries);
   - ``"encoder"``: the posterior means given by the VAE-NMF encoders of
     the speech and noise models (VAE-NMF dictionaries only);
   - ``"semi"``: semi-supervised NMF for a noise of unknown type: the
     speech and noise dictionaries are held fixed and ``free_noise`` more
     noise atoms are learned on the noisy spectrogram itself
     (:meth:`deepnmf.NMF.fit_transform` with ``fixed_components``);

2. the Wiener-like gain, floored at ``floor``,

   .. math::

       G = \max\Big(\frac{S^p}{S^p + N^p}, g_{min}\Big), \qquad
       S = W_s H_s, \; N = W_n H_n,

3. ``G * Y`` inverted with the noisy phase.

Speech and noise models may be any fitted estimator with ``components_``
(:class:`deepnmf.NMF`, :class:`deepnmf.VAENMF`, ...) or an
:class:`deepnmf.ImplicitNMF`, sampled at the STFT bins.

The job as library calls: :func:`load_enhancer` (model folders or fitted
objects -> an enhancer), :func:`enhance` (a signal) and :func:`enhance_file`
(a file; the body of ``deepnmf enhance``). An enhancer saves to one model
folder (:meth:`Enhancer.save`) that :func:`deepnmf.load_model` reads back.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping, Sequence

import numpy as np
import torch

from deepnmf._utils import check_choice, check_nonneg_float, check_positive_int
from deepnmf.callbacks import Callback, EpochInfo, notify
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.pipelines.network_training import NetworkTraining

#: gain (power p, floor) per activation method of the enhancement experiment and the demo when none is
#: given: multiplicative updates take the magnitude ratio softened to p = 0.5, the networks' estimates
#: p = 1, none floored. Chosen on validation speakers of the training side (docs/enhancement.md, "Gain
#: settings"): average SDR of nmf+mu 5.36 dB at p = 0.5 without a floor, 4.58 with the floor 0.3 used before.
DEFAULT_GAINS = {"mu": (0.5, 0.0), "dnn": (1.0, 0.0), "encoder": (1.0, 0.0)}
#: exponent of the gain at enhancement time (:func:`sharpen`) per method kind of the enhancement experiment
#: and the demo: the networks' gains, trained by squared error, are too lenient for SDR; chosen on
#: validation speakers of the training side (benchmarks/tune_enhancement_networks.py --exponents,
#: docs/enhancement.md "Gain settings")
DEFAULT_EXPONENTS = {"mu": 1.0, "dnn": 2.0, "encoder": 1.0, "mask": 2.0}

__all__ = ["ACTIVATIONS", "DEFAULT_EXPONENTS", "DEFAULT_GAINS", "EnhancementResult", "Enhancer", "STFTSettings",
           "enhance", "enhance_file", "frozen_activations", "load_enhancer", "phase_sensitive_sources", "sharpen", "training_mixtures",
           "wiener_gain"]

ACTIVATIONS = ("mu", "dnn", "encoder", "semi")
_EPS = 1e-10
#: settings file of the enhancer folders written before the one model format (read by Enhancer.load)
_OLD_CONFIG = "enhancer.json"
#: the settings an Enhancer folder records (its model-file parameters)
_SETTINGS = ("activations", "power", "floor", "exponent", "sparsity", "beta_loss", "max_iter", "stft", "free_noise")


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
def wiener_gain(S: torch.Tensor, N: torch.Tensor, *, power: float = 2.0, floor: float = 0.0,
                exponent: float = 1.0) -> torch.Tensor:
    """Gain ``max((S^p / (S^p + N^p))^e, floor)`` from speech and noise magnitude estimates.

    Parameters
    ----------
    S, N : torch.Tensor [shape=(n_frames, n_bins)]
        Nonnegative speech and noise magnitude estimates.
    power : float
        Exponent ``p`` (2: Wiener-like, 1: magnitude ratio).
    floor : float in [0, 1)
        Lowest gain (limits musical noise and speech distortion).
    exponent : float
        Exponent ``e`` of the ratio (:func:`sharpen`; 1: none).

    Returns
    -------
    G : torch.Tensor [shape=(n_frames, n_bins)], in ``[floor, 1]``
        Where both estimates are zero the gain is 1 (nothing to remove).
    """
    if not power > 0:
        raise ParameterError(f"power must be > 0, got {power}")
    Sp, Np = S.clamp(min=0).pow(power), N.clamp(min=0).pow(power)
    total = Sp + Np
    G = torch.where(total > 0, Sp / total.clamp(min=torch.finfo(total.dtype).tiny), torch.ones_like(total))
    return sharpen(G, exponent=exponent, floor=floor)


def sharpen(G: torch.Tensor, *, exponent: float = 1.0, floor: float = 0.0) -> torch.Tensor:
    """A gain in ``[0, 1]`` raised to ``exponent`` and floored: ``max(G^e, floor)``.

    An exponent above 1 lowers every gain below 1 (``0.5 -> 0.25`` at ``e = 2``)
    and leaves 1 at 1: more noise removed, some speech attenuated where the
    estimate is unsure. Networks trained to minimise the squared error of
    the masked magnitudes predict the conditional mean of the mask, which is
    too lenient for SDR; ``e`` is chosen on validation data
    (docs/enhancement.md, "Gain settings").

    Parameters
    ----------
    G : torch.Tensor [shape=(n_frames, n_bins)]
        Gain in ``[0, 1]``.
    exponent : float
        ``e > 0``.
    floor : float in [0, 1)

    Returns
    -------
    G : torch.Tensor [shape=(n_frames, n_bins)], in ``[floor, 1]``
    """
    if not (math.isfinite(exponent) and exponent > 0):
        raise ParameterError(f"the gain exponent must be > 0, got {exponent}")
    if not 0 <= floor < 1:
        raise ParameterError(f"floor must be in [0, 1), got {floor}")
    if exponent != 1.0:
        G = G.pow(exponent)
    return G.clamp(min=floor, max=1.0)


def frozen_activations(
    X: torch.Tensor, H: torch.Tensor, *, beta_loss: str | float = "kullback-leibler", max_iter: int = 200, sparsity: float = 0.0
) -> torch.Tensor:
    """Activations of ``X`` against a frozen dictionary by multiplicative updates.

    Parameters
    ----------
    X : torch.Tensor [shape=(n_frames, n_bins)]
    H : torch.Tensor [shape=(n_components, n_bins)]
        The dictionary.
    sparsity : float
        L1 penalty on the activations (scikit-learn's ``alpha_W`` with ``l1_ratio=1``).

    Returns
    -------
    W : torch.Tensor [shape=(n_frames, n_components)]
    """
    from deepnmf.models.nmf import NMF

    est = NMF.from_components(H, beta_loss=beta_loss, max_iter=max_iter, tol=0.0, alpha_W=sparsity, l1_ratio=1.0)
    return est.transform(X.to(H.dtype))


def _fingerprint(H: torch.Tensor) -> str:
    """Short SHA-256 of a dictionary (pairs a network with the dictionaries it was trained for)."""
    data = np.ascontiguousarray(H.detach().cpu().numpy().astype(np.float32))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def _dictionary(model: Any, settings: STFTSettings, name: str) -> torch.Tensor:
    """The dictionary ``H`` ``(n_components, n_bins)`` (float32) of a fitted model at the STFT bins."""
    from deepnmf.pipelines.separation import atoms_at

    if not (hasattr(model, "components_") or hasattr(model, "dictionary_at")):
        raise ParameterError(f"the {name} model must be a fitted estimator with components_, got {type(model).__name__}")
    try:
        H = atoms_at(model, n_fft=settings.n_fft, sr=settings.sr)
    except DataError as err:
        raise DataError(f"{name} model: {err}") from err
    if bool((H < 0).any()) or not bool(torch.isfinite(H).all()):
        raise DataError(f"the {name} dictionary must be finite and nonnegative")
    return H.to(torch.float32)


def _as_model(model: Any) -> Any:
    """A model folder (str or Path) loaded with :func:`deepnmf.load_model`; anything else as given."""
    from deepnmf.io.model_files import load_model

    return load_model(model) if isinstance(model, (str, Path)) else model


def _settings(params: dict[str, Any], where: str | Path) -> dict[str, Any]:
    """Enhancer keyword arguments from saved settings (``stft`` becomes :class:`STFTSettings`)."""
    out = {k: params[k] for k in _SETTINGS if k in params}
    if "stft" in out:
        try:
            out["stft"] = STFTSettings(**out["stft"])
        except TypeError as err:
            raise ModelFileError(f"{where}: bad STFT settings: {err}") from err
    return out


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
    exponent : float
        The ratio raised to ``e`` before the floor (:func:`sharpen`; 1: none),
        at enhancement time only (a network is trained through the plain ratio).
    sparsity : float
        L1 penalty on the activations for ``"mu"`` (and the network's targets).
    beta_loss : str or float
        Divergence of the multiplicative updates.
    max_iter : int
        Multiplicative updates per signal.
    stft : STFTSettings
    network : FrameNetwork, optional
        A trained activation network (``"dnn"``); see :meth:`fit_network`.
    free_noise : int
        ``"semi"``: noise atoms learned on each noisy signal (beside the
        fixed noise dictionary).

    Attributes
    ----------
    H_speech : torch.Tensor [shape=(n_speech, n_bins)]
        The speech dictionary at the STFT bins.
    H_noise : torch.Tensor [shape=(n_noise, n_bins)]
        The noise dictionary at the STFT bins.
    network : FrameNetwork or None
    network_training_ : TrainingResult
        After :meth:`fit_network`.

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
        exponent: float = 1.0,
        sparsity: float = 0.0,
        beta_loss: str | float = "kullback-leibler",
        max_iter: int = 200,
        stft: STFTSettings = STFTSettings(),
        network: Any = None,
        free_noise: int = 8,
    ) -> None:
        check_choice(activations, "activations", ACTIVATIONS)
        self.free_noise = check_positive_int(free_noise, "free_noise")
        self.activations = activations
        self.power = float(power)
        self.floor = float(floor)
        self.exponent = float(exponent)
        wiener_gain(torch.ones(1), torch.ones(1), power=self.power, floor=self.floor, exponent=self.exponent)  # validates
        self.sparsity = check_nonneg_float(sparsity, "sparsity")
        self.beta_loss = beta_loss
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.stft = stft
        self.speech_model, self.noise_model = speech_model, noise_model
        self.H_speech = _dictionary(speech_model, stft, "speech")
        self.H_noise = _dictionary(noise_model, stft, "noise")
        if self.H_speech.shape[1] != self.H_noise.shape[1]:
            raise DataError(
                f"the speech dictionary has {self.H_speech.shape[1]} bins but the noise dictionary has "
                f"{self.H_noise.shape[1]}; both must be learned with the same STFT"
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
        return int(self.H_speech.shape[0])

    @property
    def n_noise(self) -> int:
        return int(self.H_noise.shape[0])

    def fingerprints(self) -> dict[str, str]:
        """Checksums of the two dictionaries (a network is only valid for these)."""
        return {"speech": _fingerprint(self.H_speech), "noise": _fingerprint(self.H_noise)}

    def set_network(self, network: Any) -> None:
        """Attach a trained activation network, checking it fits these dictionaries.

        A network that records ``metadata["fingerprints"]`` (every network
        trained by :meth:`fit_network` or saved by :meth:`save`) must have
        been trained for exactly these dictionaries.
        """
        cfg = network.config
        if cfg["output"] != "softplus" or cfg["n_outputs"] != self.n_speech + self.n_noise or cfg["n_bins"] != self.stft.n_bins:
            raise ModelFileError(
                f"the activation network maps {cfg['n_bins']} bins to {cfg['n_outputs']} outputs, but these "
                f"dictionaries need {self.stft.n_bins} bins -> {self.n_speech} + {self.n_noise} activations"
            )
        recorded = getattr(network, "metadata", {}).get("fingerprints")
        if recorded and recorded != self.fingerprints():
            raise ModelFileError(
                "the activation network was trained for other speech/noise dictionaries than the ones given; "
                "pass the model folders it was trained with or retrain it"
            )
        self.network = network

    def targets(self, speech_mag: torch.Tensor, noise_mag: torch.Tensor) -> torch.Tensor:
        """Training targets ``[W_s, W_n]`` ``(n_frames, n_speech + n_noise)``: clean speech and
        noise magnitudes ``(n_frames, n_bins)`` against their own frozen dictionaries."""
        W_s = self._frozen(speech_mag, self.H_speech)
        W_n = self._frozen(noise_mag, self.H_noise)
        return torch.cat([W_s, W_n], dim=1)

    def _frozen(self, X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        return frozen_activations(X, H, beta_loss=self.beta_loss, max_iter=self.max_iter, sparsity=self.sparsity)

    def estimate_activations(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech and noise activations of a noisy magnitude spectrogram.

        Parameters
        ----------
        magnitude : torch.Tensor [shape=(n_frames, n_bins)]

        Returns
        -------
        W_speech : torch.Tensor [shape=(n_frames, n_speech)]
        W_noise : torch.Tensor [shape=(n_frames, n_noise)]
        """
        if self.activations == "mu":
            W = self._frozen(magnitude, torch.cat([self.H_speech, self.H_noise]))
        elif self.activations == "dnn":
            if self.network is None:
                raise ParameterError("activations='dnn' needs a trained network: call fit_network or pass network=")
            W = self.network.predict(magnitude.float())
        else:
            W_s = torch.as_tensor(self.speech_model.transform(magnitude.float().numpy()), dtype=torch.float32)
            W_n = torch.as_tensor(self.noise_model.transform(magnitude.float().numpy()), dtype=torch.float32)
            W = torch.cat([W_s, W_n], dim=1)
        return W[:, : self.n_speech].float(), W[:, self.n_speech :].float()

    def estimate_magnitudes(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``S = W_s H_s`` and ``N = W_n H_n``, both ``(n_frames, n_bins)``.

        With ``activations="semi"``, ``N`` also holds the part explained by
        the noise atoms learned on ``magnitude`` (:meth:`semi_supervised`).
        """
        if self.activations == "semi":
            S, N, _ = self.semi_supervised(magnitude)
            return S, N
        W_s, W_n = self.estimate_activations(magnitude)
        return W_s @ self.H_speech, W_n @ self.H_noise

    def semi_supervised(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Semi-supervised NMF: speech and noise dictionaries fixed, ``free_noise`` atoms learned.

        Parameters
        ----------
        magnitude : torch.Tensor [shape=(n_frames, n_bins)]

        Returns
        -------
        S, N : torch.Tensor [shape=(n_frames, n_bins)]
            Speech estimate ``W_s H_s``; noise estimate from the fixed and the learned noise atoms.
        H_free : torch.Tensor [shape=(free_noise, n_bins)]
            The noise atoms learned on this signal.
        """
        from deepnmf.models.nmf import NMF

        fixed = torch.cat([self.H_speech, self.H_noise]).double()  # (n_speech + n_noise, n_bins)
        # atoms scaled to unit mean, so the L1 penalty means the same for any dictionary (W absorbs the scale)
        fixed = fixed / fixed.mean(dim=1, keepdim=True).clamp(min=_EPS)
        est = NMF(fixed.shape[0] + self.free_noise, beta_loss=self.beta_loss, max_iter=self.max_iter, tol=0.0,
                  alpha_W=self.sparsity, alpha_H=0.0, l1_ratio=1.0, init="random", random_state=0)
        with warnings.catch_warnings():  # most atoms are fixed: more atoms than frames is no worry here
            warnings.filterwarnings("ignore", message=".*more components than the")
            W = est.fit_transform(magnitude.double(), fixed_components=fixed)  # (n_frames, k)
        H = est.components_  # (k, n_bins); the first rows are `fixed`
        S = W[:, : self.n_speech] @ H[: self.n_speech]
        N = W[:, self.n_speech :] @ H[self.n_speech :]
        return S.float(), N.float(), H[fixed.shape[0] :].float()

    def gain(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The gain ``(n_frames, n_bins)`` applied to the noisy STFT."""
        S, N = self.estimate_magnitudes(magnitude)
        return wiener_gain(S, N, power=self.power, floor=self.floor, exponent=self.exponent)

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
        objective: str = "activations",
        training: NetworkTraining | None = None,
        random_state: Any = None,
        callback: Callback | None = None,
        cache: MutableMapping | None = None,
        **settings: Any,
    ) -> "Enhancer":
        """Train the activation network on generated noisy mixtures.

        Each training utterance is mixed ``n_copies`` times with a random
        excerpt of ``noise`` at an SNR drawn uniformly from ``snr_range``.

        Parameters
        ----------
        speech : sequence of array-like [shape=(n_samples_i,)]
            Clean training utterances (not the test speakers).
        noise : array-like [shape=(n_noise_samples,)] or sequence of them
            Training noise (the training part of each noise recording).
        objective : {"activations", "signal", "phase"}
            ``"activations"`` (Kang et al.): the targets are the activations
            of the clean speech and of the scaled noise against their own
            frozen dictionaries. ``"signal"``: the network's activations go
            through the frozen dictionaries and this enhancer's gain
            (``power``), and the masked noisy magnitudes are fitted to the
            clean speech and the noise (signal approximation, with Huang et
            al.'s ``discriminative`` term): the dictionaries become the
            network's fixed output layer. ``"phase"``: the same, fitted to
            the phase-sensitive speech and noise magnitudes
            (:func:`phase_sensitive_sources`, Erdogan et al. 2015), which
            the noisy phase of the output can actually reach.
        training : NetworkTraining, optional
            The mixtures, the network and its optimiser
            (:class:`~deepnmf.pipelines.network_training.NetworkTraining`;
            default: its defaults).
        random_state : int, generator or None
            Seeds the mixtures, the initial weights and the shuffling.
        callback : callable, optional
            Receives :class:`~deepnmf.callbacks.EpochInfo` records: stage
            ``"pairs"`` while making the training pairs (``epoch`` pairs of
            ``max_epochs`` done), then stage ``"network"`` once per epoch
            with the training and validation losses.
        cache : dict, optional
            Signal objectives with an integer ``random_state``: a training matrix laid out by an
            earlier fit on the same speech, noise, mixtures and network inputs is taken from it
            (another enhancer's, or a :class:`MaskEnhancer`'s), and this fit's is stored in it
            (:func:`~deepnmf.pipelines.frame_networks.train_on_mixtures`). Give one dict to fits
            on the same speech and noise only.
        **settings :
            Fields of :class:`~deepnmf.pipelines.network_training.NetworkTraining`
            that replace those of ``training`` (``snr_range``, ``n_copies``,
            ``hidden``, ``epochs``, ``noise_aware``, ``loss_scale``, ...).

        Returns
        -------
        self
        """

        check_choice(objective, "objective", ("activations", "signal", "phase"))
        training = NetworkTraining.of(training, settings)
        mixtures = training.mixtures(speech, noise, self.stft, phase_sensitive=objective == "phase",
                                     random_state=random_state, callback=callback)
        net = training.network(self.stft.n_bins, self.n_speech + self.n_noise)
        self.network_training_ = training.fit(
            net, mixtures, target_fn=self.targets if objective == "activations" else None,
            mask_fn=self._mask_of_activations, random_state=random_state, callback=callback, cache=cache)
        net.metadata["fingerprints"] = self.fingerprints()
        net.metadata["objective"] = objective
        self.network = net
        self.activations = "dnn"
        return self

    def _mask_of_activations(self, W: torch.Tensor) -> torch.Tensor:
        """This enhancer's gain (no floor) of activations ``(..., n_speech + n_noise)`` -> ``(..., n_bins)``."""
        S = W[..., : self.n_speech] @ self.H_speech.to(W.dtype)
        N = W[..., self.n_speech :] @ self.H_noise.to(W.dtype)
        return wiener_gain(S, N, power=self.power)

    # -------------------------------------------------------------- files
    def config(self) -> dict[str, Any]:
        """Settings as JSON (without the models), with the dictionaries' checksums."""
        return {"activations": self.activations, "power": self.power, "floor": self.floor, "exponent": self.exponent,
                "sparsity": self.sparsity, "beta_loss": self.beta_loss, "max_iter": self.max_iter,
                "stft": asdict(self.stft), "free_noise": self.free_noise, "fingerprints": self.fingerprints()}

    def save(self, path: str | Path) -> Path:
        """Write one model folder of type ``"Enhancer"``: its settings, and the speech model, the
        noise model and the network (if any) as model folders ``speech/``, ``noise/``, ``network/``.

        Read it back with :meth:`load` or :func:`deepnmf.load_model`.
        """
        from deepnmf.io.model_files import write_composite

        if self.network is not None:
            self.network.metadata = {**self.network.metadata, "fingerprints": self.fingerprints()}
        config = self.config()
        params = {k: config[k] for k in _SETTINGS}
        parts = {"speech": self.speech_model, "noise": self.noise_model, "network": self.network}
        return write_composite(path, model="Enhancer", params=params, parts=parts,
                               state={"fingerprints": config["fingerprints"]})

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "Enhancer":
        """Read a folder written by :meth:`save`; keyword arguments override saved settings.

        A folder of the layout before the one model format (``enhancer.json``)
        is read too; save it again to convert it.

        Raises
        ------
        ModelFileError
            Not an Enhancer folder, a missing or damaged part, or parts whose
            dictionaries are not the ones the enhancer was saved with.
        """
        from deepnmf.io.model_files import CONFIG, read_composite

        folder = Path(path)
        if (folder / _OLD_CONFIG).is_file() and not (folder / CONFIG).is_file():
            return cls._load_old_layout(folder, overrides)
        config, parts = read_composite(folder, model="Enhancer")
        missing = [name for name in ("speech", "noise") if name not in parts]
        if missing:
            raise ModelFileError(f"{folder}: the enhancer folder lacks its {' and '.join(missing)} model")
        enh = cls(parts["speech"], parts["noise"], **{**_settings(config["params"], folder), **overrides})
        if enh.fingerprints() != config["state"].get("fingerprints"):
            raise ModelFileError(f"{folder}: the speech/noise models are not the ones this enhancer was saved with")
        if "network" in parts:
            enh.set_network(parts["network"])
        return enh

    @classmethod
    def _load_old_layout(cls, folder: Path, overrides: dict[str, Any]) -> "Enhancer":
        """An enhancer folder of the old layout: ``enhancer.json`` + ``speech/``, ``noise/``, ``network/``."""
        try:
            config = json.loads((folder / _OLD_CONFIG).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelFileError(f"{folder / _OLD_CONFIG} is not valid JSON: {err}") from err
        if not isinstance(config, dict):
            raise ModelFileError(f"{folder / _OLD_CONFIG} is not an enhancer configuration")
        network = folder / "network" if (folder / "network").is_dir() else None
        return cls.from_folders(folder / "speech", folder / "noise", network=network,
                                **{**_settings(config, folder), **overrides})

    @classmethod
    def from_folders(
        cls, speech: Any, noise: Any, *, network: Any = None, **settings: Any
    ) -> "Enhancer":
        """Build from saved model folders or fitted objects (``deepnmf enhance --speech-model/--noise-model``).

        Parameters
        ----------
        speech, noise : str, Path or fitted estimator
            Model folders (read with :func:`deepnmf.load_model`) or models.
        network : str, Path or FrameNetwork, optional
            The activation network (implies ``activations="dnn"`` unless given).
        **settings
            Keyword arguments of :class:`Enhancer`.
        """
        speech_model, noise_model, net = _as_model(speech), _as_model(noise), _as_model(network)
        if net is not None and "activations" not in settings:
            settings["activations"] = "dnn"
        if settings.get("activations") == "dnn" and net is None:
            raise ParameterError("activations='dnn' needs the trained network folder (--network)")
        enh = cls(speech_model, noise_model, **settings)
        if net is not None:
            enh.set_network(net)
        return enh


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
    n_copies: int = 1, gain_range: tuple[float, float] = (0.0, 0.0), max_mixtures: int | None = None,
    speed_range: tuple[float, float] = (1.0, 1.0), phase_sensitive: bool = False, random_state: Any = None,
    callback: Callback | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Generate magnitude spectrograms ``(|Y|, |S|, |N|)``, each ``(n_frames, n_bins)``, of training mixtures.

    Each utterance is mixed ``n_copies`` times with a random excerpt of a
    random noise at an SNR drawn uniformly from ``snr_range``, and the
    mixture (speech and noise alike) is scaled by a gain drawn uniformly from
    ``gain_range`` dB (``(0, 0)``, the default, draws nothing). With
    ``max_mixtures`` below ``len(speech) * n_copies`` only that many
    mixtures are made, of utterances in a random order (so the cost of
    training does not grow with the corpus). With ``speed_range`` other
    than ``(1, 1)`` each utterance is first played faster or slower by a
    factor drawn uniformly from it (:func:`deepnmf.audio.mixing.change_speed`,
    speed perturbation: new pitch and formants, as if from another talker).
    ``callback``
    receives an :class:`~deepnmf.callbacks.EpochInfo` (stage ``"pairs"``,
    ``epoch`` mixtures of ``max_epochs`` done) after each mixture.

    With ``phase_sensitive`` the sources are the parts of the clean speech
    and of the noise in phase with the mixture (Erdogan et al. 2015,
    truncated): ``S' = clip(|S| cos(angle S - angle Y), 0, |Y|)`` and
    ``N' = |Y| - S'``, the magnitudes a real mask of the noisy STFT can reach
    (see :func:`phase_sensitive_sources`).
    """
    from deepnmf.audio.mixing import _numpy_rng, change_speed, mix_at_snr, noise_excerpt

    single = isinstance(noise, np.ndarray) and noise.ndim == 1
    noises = [np.asarray(n, dtype=np.float64) for n in ([noise] if single else noise)]
    lo, hi = map(float, snr_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ParameterError(f"snr_range must be (low, high) with low <= high, got {snr_range}")
    if len(speech) == 0 or not noises:
        raise DataError("training needs at least one clean utterance and one noise signal")
    g_lo, g_hi = map(float, gain_range)
    if not (np.isfinite(g_lo) and np.isfinite(g_hi) and g_lo <= g_hi):
        raise ParameterError(f"gain_range must be (low, high) dB with low <= high, got {gain_range}")
    v_lo, v_hi = map(float, speed_range)
    if not (0.5 <= v_lo <= v_hi <= 2.0):
        raise ParameterError(f"speed_range must be (low, high) factors in [0.5, 2] with low <= high, got {speed_range}")
    rng = _numpy_rng(random_state)
    total = len(speech) * check_positive_int(n_copies, "n_copies")
    order = np.arange(total) % len(speech)
    if max_mixtures is not None and check_positive_int(max_mixtures, "max_mixtures") < total:
        order = rng.permutation(order)[:max_mixtures]
        total = int(max_mixtures)
    for i in range(total):
        s = np.asarray(speech[order[i]], dtype=np.float64)
        if (v_lo, v_hi) != (1.0, 1.0):
            s = change_speed(s, float(rng.uniform(v_lo, v_hi)))
        n = noise_excerpt(noises[int(rng.integers(len(noises)))], s.size, random_state=rng)
        y, s, n = mix_at_snr(s, n, float(rng.uniform(lo, hi)), peak=None)
        gain = 10.0 ** (rng.uniform(g_lo, g_hi) / 20.0) if (g_lo, g_hi) != (0.0, 0.0) else 1.0
        if phase_sensitive:
            Y, S = stft.stft(gain * y), stft.stft(gain * s)
            yield (Y.abs(), *phase_sensitive_sources(Y, S))
        else:
            yield tuple(stft.stft(gain * v).abs() for v in (y, s, n))
        notify(callback, EpochInfo(i + 1, total, stage="pairs"))


def phase_sensitive_sources(Y: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The truncated phase-sensitive speech and noise magnitudes of a mixture.

    Parameters
    ----------
    Y, S : torch.Tensor [shape=(n_frames, n_bins), complex]
        STFTs of the mixture and of its clean speech (the noise is ``Y - S``).

    Returns
    -------
    speech, noise : torch.Tensor [shape=(n_frames, n_bins), real]
        ``S' = clip(Re(S conj(Y)) / |Y|, 0, |Y|)`` (``|S| cos`` of the phase
        difference) and ``N' = |Y| - S'``; both lie in ``[0, |Y|]`` and add up
        to ``|Y|``, so a mask in ``[0, 1]`` can reach them exactly.
    """
    mag = Y.abs()
    speech = ((S * Y.conj()).real / mag.clamp(min=_EPS)).clamp(min=0.0)
    speech = torch.minimum(speech, mag)
    return speech, mag - speech


# -------------------------------------------------------------- the job
@dataclass
class EnhancementResult:
    """What :func:`enhance_file` computed (nothing is written).

    Attributes
    ----------
    enhanced : np.ndarray [shape=(n_samples,)]
        The enhanced signal at ``sr``.
    gain : np.ndarray [shape=(n_frames, n_bins)]
        The gain applied to the noisy STFT.
    noisy : np.ndarray [shape=(n_samples,)]
        The noisy signal as read (resampled to ``sr``).
    sr : int
    seconds : float
        Time spent enhancing (reading excluded).
    settings : dict
        The enhancer's settings (``config()``), for a report.
    stft : STFTSettings
    """

    enhanced: np.ndarray
    gain: np.ndarray
    noisy: np.ndarray
    sr: int
    seconds: float
    settings: dict
    stft: STFTSettings

    def noisy_magnitude(self) -> np.ndarray:
        """``|STFT|`` of the noisy signal, ``(n_frames, n_bins)`` (the grid of ``gain``)."""
        return self.stft.stft(self.noisy).abs().numpy()


def _loaded_enhancer(model: Any, settings: dict[str, Any]) -> Any:
    """An enhancer object, or an enhancer folder of any type (``settings`` only for an Enhancer)."""
    from deepnmf.io.model_files import load_model, peek_model_type

    if isinstance(model, (str, Path)):
        if (Path(model) / _OLD_CONFIG).is_file() or peek_model_type(model) == "Enhancer":
            return Enhancer.load(model, **settings)
        model = load_model(model)
    elif settings and isinstance(model, Enhancer):
        raise ParameterError("gain options apply when an enhancer is read from a folder; set them on the object")
    if not hasattr(model, "enhance"):
        raise ModelFileError(f"the model is a {type(model).__name__}, not an enhancer (Enhancer, MaskEnhancer, "
                             "DNMFEnhancer); give dictionaries as --speech-model/--noise-model")
    if settings and not isinstance(model, Enhancer):
        raise ParameterError(f"a {type(model).__name__} takes no activations, power, floor or sparsity options")
    return model


def load_enhancer(
    model: Any = None,
    *,
    speech_model: Any = None,
    noise_model: Any = None,
    network: Any = None,
    mask_network: Any = None,
    pretrained: str | None = None,
    **settings: Any,
) -> Any:
    """The enhancer described by model folders or fitted objects.

    Give exactly one of: ``model`` (an enhancer folder of any type, or an
    enhancer object), ``speech_model`` + ``noise_model`` (+ ``network``)
    (dictionary models and an activation network), or ``mask_network`` (a
    :class:`~deepnmf.pipelines.enhancement_baselines.MaskEnhancer` folder).
    Given none of them, the shipped default models are used
    (:func:`deepnmf.pretrained.default_enhancer`: the ``pretrained`` speech
    dictionary, ``"nmf"`` or ``"vae-nmf"``, the general noise dictionary and
    semi-supervised NMF that learns more noise atoms on the noisy signal).

    Parameters
    ----------
    model, speech_model, noise_model, network, mask_network : str, Path or object, optional
    **settings
        :class:`Enhancer` settings (``activations``, ``power``, ``floor``,
        ``sparsity``...); ``None`` values are ignored.

    Returns
    -------
    enhancer : Enhancer, MaskEnhancer or DNMFEnhancer

    Raises
    ------
    ParameterError
        A combination that does not describe one enhancer.
    ModelFileError
        A folder that cannot be read, or parts that do not belong together.
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    given = [v for v in (model, speech_model, noise_model, network, mask_network) if v is not None]
    if pretrained is not None or not given:
        from deepnmf.pretrained import default_enhancer

        if given:
            raise ParameterError("--pretrained (pretrained=) uses the shipped models: give no model folders with it")
        return default_enhancer(pretrained or "nmf", **settings)
    if mask_network is not None:
        from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

        if any(v is not None for v in (model, speech_model, noise_model, network)) or set(settings) - {"exponent"}:
            raise ParameterError("--mask-network (mask_network=) works alone: no dictionaries, network or gain options "
                                 "but --exponent")
        if not isinstance(mask_network, (str, Path)):
            if settings:
                raise ParameterError("gain options apply when an enhancer is read from a folder; set them on the object")
            return mask_network
        enh = MaskEnhancer.load(mask_network)
        if "exponent" in settings:
            sharpen(torch.ones(1), exponent=settings["exponent"])  # validates it
            enh.exponent = float(settings["exponent"])
        return enh
    if model is not None:
        if any(v is not None for v in (speech_model, noise_model, network)):
            raise ParameterError("give either --model or --speech-model/--noise-model/--network, not both")
        return _loaded_enhancer(model, settings)
    if speech_model is None or noise_model is None:
        raise ParameterError("give --speech-model and --noise-model (speech_model=, noise_model=: model folders or "
                             "fitted models), or --model (model=: an enhancer folder)")
    return Enhancer.from_folders(speech_model, noise_model, network=network, **settings)


def enhance(noisy: Any, *, return_gain: bool = False, **sources: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Enhance a signal with the enhancer that :func:`load_enhancer` makes of ``sources``.

    Parameters
    ----------
    noisy : array-like [shape=(n_samples,)]
        At the enhancer's sampling rate (``stft.sr``, 16 kHz by default).
    return_gain : bool
        Also return the gain ``(n_frames, n_bins)``.
    **sources
        The arguments of :func:`load_enhancer` (``model=``, or
        ``speech_model=`` and ``noise_model=``..., and settings).

    Returns
    -------
    enhanced : np.ndarray [shape=(n_samples,)]
    gain : np.ndarray [shape=(n_frames, n_bins)], if ``return_gain``
    """
    return load_enhancer(**sources).enhance(noisy, return_gain=return_gain)


def enhance_file(noisy: str | Path, **sources: Any) -> EnhancementResult:
    """Read a noisy speech file (any rate, resampled to the enhancer's) and enhance it.

    Parameters
    ----------
    noisy : str or Path
        An audio file.
    **sources
        The arguments of :func:`load_enhancer`.

    Returns
    -------
    result : EnhancementResult
        The enhanced signal, the gain and the settings; nothing is written.
    """
    from deepnmf.audio.io import load_audio

    enh = load_enhancer(**sources)
    y, sr = load_audio(noisy, sr=enh.stft.sr)
    t0 = time.perf_counter()
    enhanced, gain = enh.enhance(y, return_gain=True)
    seconds = time.perf_counter() - t0
    return EnhancementResult(enhanced=enhanced, gain=gain, noisy=y, sr=sr, seconds=seconds, settings=enh.config(),
                             stft=enh.stft)
