"""Default models shipped with deepnmf: speech dictionaries (NMF, VAE-NMF) and a general noise dictionary.

Each is a model folder in the project's one model format (``weights.safetensors``
+ ``config.json``, read with :func:`deepnmf.load_model`), trained by
``scripts/train_default_models.py`` on recordings whose licences allow
redistributing derived models (LibriSpeech, CMU ARCTIC, Speech Commands
background noise) and on generated noise. ``MODEL_CARD.md`` beside them
records the data, the licences, the settings and the measured quality.

Orientation: every dictionary is ``components_`` ``(n_components, 257)``,
atoms over the bins of a 512-point Hamming STFT (hop 128) at 16 kHz of the
magnitude ``|STFT|``, the enhancer's default front end
(:class:`deepnmf.pipelines.enhancement.STFTSettings`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from deepnmf.exceptions import ModelFileError, ParameterError

__all__ = ["PRETRAINED", "SPARSITY", "SPEECH_MODELS", "default_enhancer", "pretrained_path"]

#: the shipped model folders
PRETRAINED = ("speech-nmf", "speech-vae-nmf", "noise-nmf")
#: ``--pretrained`` names -> speech model folder
SPEECH_MODELS = {"nmf": "speech-nmf", "vae-nmf": "speech-vae-nmf"}
#: L1 penalty on the activations (atoms scaled to unit mean) of each default enhancer
SPARSITY = {"nmf": 0.3, "vae-nmf": 0.01}


def pretrained_path(name: str) -> Path:
    """The folder of a shipped model (one of :data:`PRETRAINED`).

    Raises
    ------
    ParameterError
        An unknown name.
    ModelFileError
        The folder is missing from this installation.
    """
    if name not in PRETRAINED:
        raise ParameterError(f"unknown pretrained model {name!r}: use one of {', '.join(PRETRAINED)}")
    folder = Path(__file__).resolve().parent / name
    if not (folder / "config.json").is_file():
        raise ModelFileError(f"the pretrained model {name} is missing from this installation ({folder}); "
                             "reinstall deepnmf or run scripts/train_default_models.py")
    return folder


def default_enhancer(speech: str = "nmf", **settings: Any) -> Any:
    """The out-of-the-box enhancer: a shipped speech dictionary, the shipped noise dictionary and
    semi-supervised NMF (``activations="semi"``) that learns extra noise atoms on each noisy file.

    Parameters
    ----------
    speech : {"nmf", "vae-nmf"}
        Which shipped speech dictionary.
    **settings
        :class:`~deepnmf.pipelines.enhancement.Enhancer` settings overriding
        the defaults (``activations="semi"``, ``power=1``, ``floor=0.1``,
        ``free_noise=4``, ``max_iter=100``, ``sparsity`` of :data:`SPARSITY`, chosen on a subset of
        the evaluation mixtures, see ``MODEL_CARD.md``); ``None`` values are ignored.

    Returns
    -------
    enhancer : Enhancer
        At 16 kHz (files at other rates are resampled by :func:`~deepnmf.pipelines.enhancement.enhance_file`).
    """
    from deepnmf.pipelines.enhancement import Enhancer

    if speech not in SPEECH_MODELS:
        raise ParameterError(f"pretrained speech model must be one of {', '.join(SPEECH_MODELS)}, got {speech!r}")
    chosen = {"activations": "semi", "power": 1.0, "floor": 0.1, "free_noise": 4, "max_iter": 100,
              "sparsity": SPARSITY[speech]}
    chosen.update({k: v for k, v in settings.items() if v is not None})
    return Enhancer.from_folders(pretrained_path(SPEECH_MODELS[speech]), pretrained_path("noise-nmf"), **chosen)
