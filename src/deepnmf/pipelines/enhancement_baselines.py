"""Baselines of the enhancement experiment: a DNN mask and discriminative NMF.

Orientation as in :mod:`deepnmf.pipelines.enhancement`: spectrograms
``(n_frames, n_bins)``, dictionaries ``H`` ``(n_components, n_bins)``.
Both classes offer ``gain(magnitude)``, ``enhance(noisy)``, ``config()``
and ``save(path)`` / ``load(path)`` like
:class:`deepnmf.pipelines.enhancement.Enhancer`; their folders are model
folders that :func:`deepnmf.load_model` reads.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict
from pathlib import Path
from typing import Any, MutableMapping, Sequence

import torch

from deepnmf.callbacks import Callback
from deepnmf.exceptions import ModelFileError, ParameterError
from deepnmf.pipelines.enhancement import (
    _EPS, STFTSettings, _apply_gain, _dictionary, _fingerprint, _settings, sharpen, training_mixtures, wiener_gain,
)
from deepnmf.pipelines.network_training import NetworkTraining

__all__ = ["MaskEnhancer", "DNMFEnhancer"]


# ------------------------------------------------------- DNN mask baseline
class MaskEnhancer:
    """DNN mask baseline (after Huang et al. 2014): a network predicts the ratio mask directly.

    A :class:`~deepnmf.nn.networks.FrameNetwork` with a sigmoid output maps
    the noisy log-magnitude frame with context to ``|S|^p / (|S|^p + |N|^p)``
    per bin; no dictionary is involved.

    Parameters
    ----------
    mask_power : float
        Exponent ``p`` of the target ratio mask (1: magnitude ratio).
    stft : STFTSettings
    network : FrameNetwork or sequence of FrameNetwork, optional
        A trained mask network, or several whose masks are averaged (an
        ensemble); see :meth:`fit`.
    exponent : float
        The predicted mask is raised to this power when enhancing
        (:func:`~deepnmf.pipelines.enhancement.sharpen`; 1: none); training
        never uses it.

    Attributes
    ----------
    networks : list of FrameNetwork
        The members (one for a single network); :attr:`network` is the first.
    ensemble_training_ : list of TrainingResult
        After :meth:`fit`, each member's training history (``network_training_`` is the first's).
    """

    activations = "mask"

    def __init__(self, *, mask_power: float = 1.0, stft: STFTSettings = STFTSettings(), network: Any = None,
                 exponent: float = 1.0) -> None:
        if not mask_power > 0:
            raise ParameterError(f"mask_power must be > 0, got {mask_power}")
        sharpen(torch.ones(1), exponent=exponent)  # validates it
        self.mask_power, self.stft, self.exponent = float(mask_power), stft, float(exponent)
        self.networks = [] if network is None else list(network) if isinstance(network, (list, tuple)) else [network]

    @property
    def network(self) -> Any:
        """The (first) mask network, ``None`` before :meth:`fit`."""
        return self.networks[0] if self.networks else None

    def fit(self, speech: Sequence[Any], noise: Any, *, objective: str = "mask", output: str = "sigmoid",
            n_networks: int = 1, training: NetworkTraining | None = None, random_state: Any = None,
            callback: Callback | None = None, cache: MutableMapping | None = None, **settings: Any) -> "MaskEnhancer":
        """Train on generated mixtures (as :meth:`Enhancer.fit_network`, same callback records); returns ``self``.

        ``objective="mask"`` fits the ratio mask ``|S|^p / (|S|^p + |N|^p)`` by squared error;
        ``"signal"`` fits the masked noisy magnitudes to the clean speech and the noise (Huang et
        al.'s signal approximation, with their ``discriminative`` term), ``"phase"`` to their
        phase-sensitive parts (:func:`~deepnmf.pipelines.enhancement.phase_sensitive_sources`).
        ``output="joint"`` is their joint mask layer (:class:`~deepnmf.nn.networks.FrameNetwork`).

        ``training`` (a :class:`~deepnmf.pipelines.network_training.NetworkTraining`) and the
        keyword ``settings`` that replace its fields (``snr_range``, ``n_copies``, ``hidden``,
        ``epochs``, ``recurrent="gru"|"lstm"`` for Huang et al.'s recurrent network,
        ``noise_aware``, ``loss_scale``, ...) set the mixtures, the network and its optimiser, as
        for :meth:`Enhancer.fit_network`.

        ``n_networks`` above 1 trains an ensemble: network ``i`` is trained as a single one would be
        with seed ``random_state + i`` (its own initialisation, shuffling and training mixtures; the
        first is the single network), and :meth:`gain` averages their masks. It costs ``n_networks``
        trainings and predictions.

        ``cache`` shares laid-out training matrices with other fits on the same speech and noise
        (:meth:`Enhancer.fit_network`): the first member's mixtures are those of an activation
        network trained with the same settings and ``random_state``.
        """
        from deepnmf._utils import check_choice, check_positive_int

        check_choice(objective, "objective", ("mask", "signal", "phase"))
        check_choice(output, "output", ("sigmoid", "joint"))
        n_networks = check_positive_int(n_networks, "n_networks")
        training = NetworkTraining.of(training, settings)
        integer = isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
        if n_networks > 1 and random_state is not None and not integer:
            raise ParameterError("an ensemble (n_networks > 1) needs an integer random_state (member i uses random_state + i) "
                                 f"or None, got {type(random_state).__name__}")
        ratio_mask = lambda S, N: wiener_gain(S, N, power=self.mask_power)  # noqa: E731
        networks, self.ensemble_training_ = [], []
        for i in range(n_networks):
            seed = int(random_state) + i if integer else random_state
            mixtures = training.mixtures(speech, noise, self.stft, phase_sensitive=objective == "phase",
                                         random_state=seed, callback=callback)
            net = training.network(self.stft.n_bins, self.stft.n_bins, output=output)
            self.ensemble_training_.append(training.fit(
                net, mixtures, target_fn=ratio_mask if objective == "mask" else None, random_state=seed,
                callback=callback, cache=cache))
            net.metadata.update(type="mask", objective=objective, discriminative=training.discriminative)
            networks.append(net)
        self.network_training_ = self.ensemble_training_[0]
        self.networks = networks
        return self

    def gain(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The predicted mask ``(n_frames, n_bins)`` of a noisy magnitude spectrogram (the members' mean,
        raised to :attr:`exponent`)."""
        if not self.networks:
            raise ParameterError("the mask network is not trained: call fit or pass network=")
        mask = sum(net.predict(magnitude.float()) for net in self.networks) / len(self.networks)
        return sharpen(mask, exponent=self.exponent)

    def enhance(self, noisy: Any, *, return_gain: bool = False):
        """Enhanced signal ``(n_samples,)`` (and the mask) as :meth:`Enhancer.enhance`."""
        return _apply_gain(self.stft, noisy, self.gain, return_gain)

    def config(self) -> dict[str, Any]:
        """Settings as JSON (for a report)."""
        return {"activations": "mask", "mask_power": self.mask_power, "exponent": self.exponent,
                **({"n_networks": len(self.networks)} if len(self.networks) > 1 else {})}

    def save(self, path: str | Path) -> Path:
        """Write one model folder of type ``"MaskEnhancer"`` (mask power, STFT) with the network in ``network/``
        (an ensemble's further members in ``network-1/``, ``network-2/``, ...)."""
        from deepnmf.io.model_files import write_composite

        if not self.networks:
            raise ParameterError("nothing to save: the mask network is not trained")
        parts = {"network" if i == 0 else f"network-{i}": net for i, net in enumerate(self.networks)}
        return write_composite(path, model="MaskEnhancer", parts=parts,
                               params={"mask_power": self.mask_power, "exponent": self.exponent, "stft": asdict(self.stft)})

    @classmethod
    def load(cls, path: str | Path) -> "MaskEnhancer":
        """Read a folder written by :meth:`save` (or a mask network folder of the layout before it)."""
        from deepnmf.io.model_files import peek_model_type, read_composite
        from deepnmf.nn.networks import FrameNetwork

        if peek_model_type(path) == "FrameNetwork":  # the old layout: the network folder with the settings
            net = FrameNetwork.load(path)
            settings = net.metadata if net.metadata.get("type") == "mask" else {}
            members = [net]
        else:
            config, parts = read_composite(path, model="MaskEnhancer")
            settings = config["params"]
            extra = sorted((k for k in parts if k.startswith("network-")), key=lambda k: (len(k), k))
            members = [parts.get("network")] + [parts[k] for k in extra]
        for net in members:
            is_mask = isinstance(net, FrameNetwork) and net.config["output"] in ("sigmoid", "joint")
            if not is_mask or not settings:
                what = ("it holds no frame network" if not isinstance(net, FrameNetwork) else
                        f"it predicts {net.config['output']} outputs" if not is_mask else
                        "it records no mask settings")
                raise ModelFileError(f"{path} is not a mask network ({what})")
        if len({net.config["n_bins"] for net in members}) != 1:
            raise ModelFileError(f"{path}: the ensemble's networks expect different numbers of frequency bins")
        stft = _settings(settings, path).get("stft", STFTSettings())
        try:
            return cls(mask_power=settings.get("mask_power", 1.0), stft=stft, network=members,
                       exponent=settings.get("exponent", 1.0))
        except (TypeError, ParameterError) as err:
            raise ModelFileError(f"{path}: bad mask settings: {err}") from err


# -------------------------------------------------- discriminative NMF
class DNMFEnhancer:
    """Discriminative NMF baseline (Weninger et al. 2014) through :class:`deepnmf.DiscriminativeNMF`.

    The analysis dictionary is ``[H_s; H_n]`` of two fitted dictionary models;
    a reconstruction dictionary is learned on generated training mixtures so
    that the Wiener-filtered speech ``S_hat`` matches the clean speech. The
    gain applied to the noisy STFT is ``S_hat / |Y|``, floored at ``floor``.

    Parameters
    ----------
    speech_model, noise_model : fitted estimator with ``components_``
    floor : float in [0, 1)
    sparsity : float
        L1 weight on the activations of the analysis step.
    max_epochs : int
        Training steps of the reconstruction dictionary.
    solver : {"adam", "mu"}
        How the reconstruction dictionary is trained (:class:`deepnmf.DiscriminativeNMF`).
    stft : STFTSettings

    Attributes
    ----------
    H_speech, H_noise : torch.Tensor [shape=(n_speech, n_bins), (n_noise, n_bins)]
        The two dictionaries at the STFT bins.
    model : DiscriminativeNMF or None
        After :meth:`fit`.
    """

    activations = "dnmf"

    def __init__(self, speech_model: Any, noise_model: Any, *, floor: float = 0.0, sparsity: float = 0.0,
                 max_epochs: int = 200, solver: str = "mu", stft: STFTSettings = STFTSettings()) -> None:
        wiener_gain(torch.ones(1), torch.ones(1), floor=floor)  # validates the floor
        self.stft, self.floor, self.sparsity, self.max_epochs = stft, float(floor), sparsity, max_epochs
        self.solver = solver
        self.speech_model, self.noise_model = speech_model, noise_model
        self.H_speech = _dictionary(speech_model, stft, "speech")
        self.H_noise = _dictionary(noise_model, stft, "noise")
        self.model = None

    def fit(self, speech: Sequence[Any], noise: Any, *, snr_range: tuple[float, float] = (-5.0, 10.0),
            max_frames: int = 20000, max_mixtures: int | None = 300, random_state: Any = None) -> "DNMFEnhancer":
        """Learn the reconstruction dictionary on generated mixtures (at most ``max_frames`` frames).

        One mixture per training utterance, or ``max_mixtures`` of them drawn at random on a larger
        corpus (:func:`~deepnmf.pipelines.enhancement.training_mixtures`), so that time and memory
        stay bounded; ``None`` mixes every utterance.
        """
        from deepnmf.models.factory import make_estimator

        Ys, Ss = [], []
        for Y, S, _ in training_mixtures(speech, noise, self.stft, snr_range=snr_range, max_mixtures=max_mixtures,
                                         random_state=random_state):
            Ys.append(Y)
            Ss.append(S)
        Y, S = torch.cat(Ys).float(), torch.cat(Ss).float()  # float32: the fit ends at float64's divergence to 5e-8
        if Y.shape[0] > max_frames:
            keep = torch.randperm(Y.shape[0], generator=torch.Generator().manual_seed(0))[:max_frames]
            Y, S = Y[keep], S[keep]
        self.model = make_estimator("dnmf", None, sparsity=self.sparsity, max_epochs=self.max_epochs,
                                    solver=self.solver, random_state=random_state)
        self.model.fit(Y.numpy(), S.numpy(), target_components=self.H_speech.float().numpy(),
                       other_components=self.H_noise.float().numpy())
        return self

    def gain(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``max(S_hat / |Y|, floor)`` ``(n_frames, n_bins)``."""
        if self.model is None:
            raise ParameterError("the discriminative NMF is not trained: call fit first")
        S_hat, _ = self.model.separate(magnitude.double().numpy())
        G = torch.as_tensor(S_hat) / magnitude.double().clamp(min=_EPS)
        return G.clamp(min=self.floor, max=1.0).float()

    def enhance(self, noisy: Any, *, return_gain: bool = False):
        """Enhanced signal ``(n_samples,)`` (and the gain) as :meth:`Enhancer.enhance`."""
        return _apply_gain(self.stft, noisy, self.gain, return_gain)

    def fingerprints(self) -> dict[str, str]:
        """Checksums of the two dictionaries."""
        return {"speech": _fingerprint(self.H_speech), "noise": _fingerprint(self.H_noise)}

    def config(self) -> dict[str, Any]:
        """Settings as JSON (without the models)."""
        return {"activations": "dnmf", "floor": self.floor, "sparsity": self.sparsity, "max_epochs": self.max_epochs,
                "solver": self.solver, "stft": asdict(self.stft), "fingerprints": self.fingerprints()}

    def save(self, path: str | Path) -> Path:
        """Write one model folder of type ``"DNMFEnhancer"`` with ``speech/``, ``noise/`` and ``dnmf/`` model folders."""
        from deepnmf.io.model_files import write_composite

        if self.model is None:
            raise ParameterError("nothing to save: the discriminative NMF is not trained")
        config = self.config()
        params = {k: config[k] for k in ("floor", "sparsity", "max_epochs", "solver", "stft")}
        parts = {"speech": self.speech_model, "noise": self.noise_model, "dnmf": self.model}
        return write_composite(path, model="DNMFEnhancer", params=params, parts=parts,
                               state={"fingerprints": config["fingerprints"]})

    @classmethod
    def load(cls, path: str | Path) -> "DNMFEnhancer":
        """Read a folder written by :meth:`save`."""
        from deepnmf.io.model_files import read_composite

        config, parts = read_composite(path, model="DNMFEnhancer")
        missing = [name for name in ("speech", "noise", "dnmf") if name not in parts]
        if missing:
            raise ModelFileError(f"{path}: the DNMF enhancer folder lacks its {', '.join(missing)} model")
        params = config["params"]
        enh = cls(parts["speech"], parts["noise"], floor=params.get("floor", 0.0), sparsity=params.get("sparsity", 0.0),
                  max_epochs=params.get("max_epochs", 200), solver=params.get("solver", "adam"),  # folders saved before the solver was recorded
                  stft=_settings(params, path).get("stft", STFTSettings()))
        if enh.fingerprints() != config["state"].get("fingerprints"):
            raise ModelFileError(f"{path}: the speech/noise models are not the ones this enhancer was saved with")
        if not hasattr(parts["dnmf"], "separate"):
            raise ModelFileError(f"{path}: dnmf/ holds a {type(parts['dnmf']).__name__}, not a DiscriminativeNMF")
        enh.model = parts["dnmf"]
        return enh
