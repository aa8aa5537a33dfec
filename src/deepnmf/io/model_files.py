"""Model folders: ``weights.safetensors`` + ``config.json``; loading never executes code.

A model folder holds

- ``weights.safetensors``: every tensor of the fitted model (safetensors is a
  plain header + raw buffers format, so reading it cannot run code);
- ``config.json``: ``{"format": "deepnmf-model", "format_version": 1,
  "model": <class name>, "deepnmf_version": ..., "params": {constructor
  arguments}, "state": {JSON-able fitted attributes}, "weights_sha256": ...}``.

The SHA-256 of the weights file is checked on load, so an altered or
truncated file is reported instead of silently giving another model.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from deepnmf.exceptions import ModelFileError

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT = "deepnmf-model"
FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model(
    path: str | Path,
    *,
    model: str,
    params: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder (created if needed) and return its path.

    Parameters
    ----------
    path : str or Path
        Folder to write.
    model : str
        Model class name, checked on load.
    params : dict
        Constructor arguments (JSON-able).
    tensors : dict of str -> torch.Tensor
        Weights; moved to CPU and made contiguous before writing.
    state : dict, optional
        Other fitted attributes (JSON-able: numbers, strings, lists).
    """
    from deepnmf import __version__
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(cpu, str(folder / WEIGHTS))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model,
        "deepnmf_version": __version__,
        "torch_version": torch.__version__,
        "params": params,
        "state": state or {},
        "weights_sha256": _sha256(folder / WEIGHTS),
    }
    try:
        text = json.dumps(config, indent=2, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"model configuration is not JSON-serialisable: {err}") from err
    (folder / CONFIG).write_text(text + "\n")
    return folder


def read_model(path: str | Path, *, model: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model folder written by :func:`write_model`.

    Parameters
    ----------
    path : str or Path
        The folder.
    model : str, optional
        Expected model class name; a folder of another model is refused.

    Returns
    -------
    config : dict
    tensors : dict of str -> torch.Tensor (CPU)

    Raises
    ------
    ModelFileError
        Missing folder or file, invalid JSON, wrong format or model type,
        weights that do not match their recorded checksum or cannot be parsed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    if not folder.is_dir():
        raise ModelFileError(f"model folder {str(folder)!r} does not exist or is not a folder")
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise ModelFileError(f"model folder {str(folder)!r} has no {name}; it is incomplete")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{folder / CONFIG} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{folder / CONFIG} is not a deepnmf model configuration")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} uses model format version {config.get('format_version')!r}; "
            f"this deepnmf reads version {FORMAT_VERSION}"
        )
    if model is not None and config.get("model") != model:
        raise ModelFileError(f"{folder} holds a {config.get('model')!r} model, not a {model!r} model")
    if _sha256(folder / WEIGHTS) != config.get("weights_sha256"):
        raise ModelFileError(
            f"{folder / WEIGHTS} does not match the checksum recorded in {CONFIG}; "
            "the file was altered or is corrupt"
        )
    try:
        tensors = load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{folder / WEIGHTS} cannot be read: {err}") from err
    for key in ("params", "state"):
        if not isinstance(config.get(key, {}), dict):
            raise ModelFileError(f"{folder / CONFIG}: field {key!r} must be an object")
    return config, tensors


def peek_model_type(path: str | Path) -> str:
    """Return the model class name recorded in a model folder (``"NMF"``, ``"VAENMF"``...)."""
    folder = Path(path)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError as err:
        raise ModelFileError(f"{folder} is not a model folder (no {CONFIG})") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{folder / CONFIG} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{folder / CONFIG} is not a deepnmf model configuration")
    return str(config.get("model"))


#: every class saved through :func:`write_model`: class name -> "module:Class" (imported on demand).
#: A new saveable class adds one line here and implements ``save(path)`` / ``load(path, **kw)``.
MODEL_CLASSES: dict[str, str] = {
    "NMF": "deepnmf.models.nmf:NMF",
    "VAENMF": "deepnmf.models.vae:VAENMF",
    "ImplicitNMF": "deepnmf.models.implicit:ImplicitNMF",
    "DiscriminativeNMF": "deepnmf.models.dnmf:DiscriminativeNMF",
    "FrameNetwork": "deepnmf.nn.networks:FrameNetwork",
    "Enhancer": "deepnmf.pipelines.enhancement:Enhancer",
    "MaskEnhancer": "deepnmf.pipelines.enhancement_baselines:MaskEnhancer",
    "DNMFEnhancer": "deepnmf.pipelines.enhancement_baselines:DNMFEnhancer",
}


def registered_class(name: str) -> type:
    """The class registered under ``name`` in :data:`MODEL_CLASSES`."""
    import importlib

    if name not in MODEL_CLASSES:
        raise ModelFileError(f"unknown model type {name!r}; this deepnmf reads {', '.join(MODEL_CLASSES)}")
    module, cls_name = MODEL_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls_name)


def load_model(path: str | Path, **kwargs: Any) -> Any:
    """Load any deepnmf model folder and return an object of the class it records.

    Parameters
    ----------
    path : str or Path
        A folder written by the ``save`` method of any registered class
        (:data:`MODEL_CLASSES`): estimators, frame networks, enhancers.
    **kwargs
        Passed to the class's ``load`` (for example ``device="cpu"``).

    Raises
    ------
    ModelFileError
        Not a model folder, an unknown model type, or any check of
        :func:`read_model` failing. Loading never unpickles or runs code.
    """
    return registered_class(peek_model_type(path)).load(path, **kwargs)


def load_any(path: str | Path) -> Any:
    """Deprecated spelling of :func:`load_model`."""
    return load_model(path)
