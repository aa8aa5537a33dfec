"""Baselines of the enhancement experiment: a DNN mask and discriminative NMF.

Orientation as in :mod:`deepnmf.pipelines.enhancement`: spectrograms ``(n_frames, n_bins)``.
Both classes offer ``gain(magnitude)`` and ``enhance(noisy)`` like
:class:`deepnmf.pipelines.enhancement.Enhancer`.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from deepnmf.pipelines.enhancement import _EPS, STFTSettings, _apply_gain, _dictionary, training_mixtures, wiener_gain
from deepnmf.exceptions import ModelFileError, ParameterError

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
    network : FrameNetwork, optional
        A trained mask network; see :meth:`fit`.
    """

    activations = "mask"

    def __init__(self, *, mask_power: float = 1.0, stft: STFTSettings = STFTSettings(), network: Any = None) -> None:
        if not mask_power > 0:
            raise ParameterError(f"mask_power must be > 0, got {mask_power}")
        self.mask_power, self.stft, self.network = float(mask_power), stft, network

    def fit(self, speech: Sequence[Any], noise: Any, *, snr_range: tuple[float, float] = (-5.0, 10.0), n_copies: int = 1,
            context: int = 2, hidden: Sequence[int] = (256, 256), epochs: int = 12, batch_size: int = 128,
            lr: float = 1e-3, random_state: Any = None, callback: Callable | None = None) -> "MaskEnhancer":
        """Train on generated mixtures (as :meth:`Enhancer.fit_network`); returns ``self``."""
        from deepnmf.nn.networks import FrameNetwork, train_frame_network

        p = self.mask_power
        inputs, targets = [], []
        for Y, S, N in training_mixtures(speech, noise, self.stft, snr_range=snr_range, n_copies=n_copies,
                                         random_state=random_state, callback=callback):
            inputs.append(Y)
            targets.append(wiener_gain(S, N, power=p))
        net = FrameNetwork(self.stft.n_bins, self.stft.n_bins, context=context, hidden=hidden, output="sigmoid")
        self.network_training_ = train_frame_network(net, inputs, targets, epochs=epochs, batch_size=batch_size, lr=lr,
                                                     random_state=random_state)
        self.network = net
        return self

    def gain(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The predicted mask ``(n_frames, n_bins)`` of a noisy magnitude spectrogram."""
        if self.network is None:
            raise ParameterError("the mask network is not trained: call fit or pass network=")
        return self.network.predict(magnitude.float())

    def enhance(self, noisy: Any, *, return_gain: bool = False):
        """Enhanced signal ``(n_samples,)`` (and the mask) as :meth:`Enhancer.enhance`."""
        return _apply_gain(self.stft, noisy, self.gain, return_gain)

    def save(self, path: str | Path) -> Path:
        """Write the network folder with the STFT settings and mask power."""
        if self.network is None:
            raise ParameterError("nothing to save: the mask network is not trained")
        return self.network.save(path, extra={"type": "mask", "mask_power": self.mask_power, "stft": asdict(self.stft)})

    @classmethod
    def load(cls, path: str | Path) -> "MaskEnhancer":
        """Read a folder written by :meth:`save`."""
        from deepnmf.nn.networks import FrameNetwork

        net, state = FrameNetwork.load(path)
        if state.get("type") != "mask" or net.config["output"] != "sigmoid":
            raise ModelFileError(f"{path} is not a mask network (it predicts {net.config['output']} outputs)")
        return cls(mask_power=state.get("mask_power", 1.0), stft=STFTSettings(**state.get("stft", {})), network=net)


# -------------------------------------------------- discriminative NMF
class DNMFEnhancer:
    """Discriminative NMF baseline (Weninger et al. 2014) through :class:`deepnmf.DiscriminativeNMF`.

    The analysis dictionary is ``[W_s; W_n]`` of two fitted dictionary models;
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
    stft : STFTSettings
    """

    activations = "dnmf"

    def __init__(self, speech_model: Any, noise_model: Any, *, floor: float = 0.0, sparsity: float = 0.0,
                 max_epochs: int = 200, stft: STFTSettings = STFTSettings()) -> None:
        wiener_gain(torch.ones(1), torch.ones(1), floor=floor)  # validates the floor
        self.stft, self.floor, self.sparsity, self.max_epochs = stft, float(floor), sparsity, max_epochs
        self.W_speech = _dictionary(speech_model, stft, "speech")
        self.W_noise = _dictionary(noise_model, stft, "noise")
        self.model = None

    def fit(self, speech: Sequence[Any], noise: Any, *, snr_range: tuple[float, float] = (-5.0, 10.0),
            max_frames: int = 20000, random_state: Any = None) -> "DNMFEnhancer":
        """Learn the reconstruction dictionary on generated mixtures (at most ``max_frames`` frames)."""
        from deepnmf.models.dnmf import DiscriminativeNMF

        Ys, Ss = [], []
        for Y, S, _ in training_mixtures(speech, noise, self.stft, snr_range=snr_range, random_state=random_state):
            Ys.append(Y)
            Ss.append(S)
        Y, S = torch.cat(Ys).double(), torch.cat(Ss).double()
        if Y.shape[0] > max_frames:
            keep = torch.randperm(Y.shape[0], generator=torch.Generator().manual_seed(0))[:max_frames]
            Y, S = Y[keep], S[keep]
        self.model = DiscriminativeNMF(sparsity=self.sparsity, max_epochs=self.max_epochs, random_state=random_state)
        self.model.fit(Y.numpy(), S.numpy(), target_components=self.W_speech.double().numpy(),
                       other_components=self.W_noise.double().numpy())
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
