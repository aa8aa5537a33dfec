"""Model folders: ``weights.safetensors`` + ``config.json``; loading never executes code.

A model folder holds

- ``weights.safetensors``: every tensor of the fitted model (safetensors is a
  plain header + raw buffers format, so reading it cannot run code);
- ``config.json``: ``{"format": "deepnmf-model", "format_version": 1,
  "model": <class name>, "deepnmf_version": ..., "params": {constructor
  arguments}, "state": {JSON-able fitted attributes}, "weights_sha256": ...}``.

The SHA-256 of the weights file is checked on load, so an altered or
truncated file is reported instead of silently giving another model.

A *composite* model (an enhancer: dictionaries plus a network) is a model
folder of its own type whose weights file is empty and whose parts are model
folders in sub-folders, listed in ``state["parts"]``
(:func:`write_composite` / :func:`read_composite`).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from deepnmf.exceptions import ModelFileError

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT = "deepnmf-model"
FORMAT_VERSION = 1
#: settings file of the enhancer folders written before the one model format
_OLD_ENHANCER_CONFIG = "enhancer.json"
#: names allowed for the parts of a composite model (sub-folder names)
_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, ``fsync``, then a rename.

    A process killed at any moment leaves either the old file or the new
    one, never a partial file under ``path``.
    """
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    import os

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_folder(build: Any, path: str | Path) -> Path:
    """Write a folder atomically: ``build(tmp)`` fills a temporary sibling, which then replaces ``path``.

    A kill while ``build`` runs leaves the old folder untouched (and a
    ``.tmp`` sibling that the next call removes); between the two renames
    at the end, at worst no folder, never a mixed or partial one.
    """
    import os
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    build(tmp)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


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
    from safetensors.torch import save as save_bytes

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(folder / WEIGHTS, save_bytes(cpu))
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
    atomic_write_bytes(folder / CONFIG, (text + "\n").encode())  # the config last: it commits the folder
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
    refuse_pickles(folder)
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
    recorded = config.get("weights_sha256")  # folders written before the checksum have none: not checked
    if recorded is not None and _sha256(folder / WEIGHTS) != recorded:
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


#: file endings of pickle-based formats (torch.save, joblib, pickle); a model folder holding one is refused
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".bin", ".npz")


def refuse_pickles(folder: str | Path) -> None:
    """Refuse a folder that holds pickle-based files: deepnmf never unpickles, so they can only be foreign or hostile.

    Raises
    ------
    ModelFileError
        Naming the first such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    found = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise ModelFileError(
            f"{folder} holds {found[0]}, a pickle-based file (torch.save, pickle, joblib); deepnmf model folders "
            f"are {WEIGHTS} + {CONFIG} only and pickles are never loaded. Remove the file or convert the model"
        )


def peek_model_type(path: str | Path) -> str:
    """Return the model class name recorded in a model folder (``"NMF"``, ``"VAENMF"``...)."""
    folder = Path(path)
    refuse_pickles(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError as err:
        if (folder / _OLD_ENHANCER_CONFIG).is_file():
            raise ModelFileError(
                f"{folder} is an enhancer folder of the old layout ({_OLD_ENHANCER_CONFIG}, no {CONFIG}); "
                "read it with deepnmf.pipelines.enhancement.Enhancer.load and save it again to convert it"
            ) from err
        raise ModelFileError(f"{folder} is not a model folder (no {CONFIG})") from err
    except (IsADirectoryError, NotADirectoryError) as err:
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
    "MiniBatchNMF": "deepnmf.models.minibatch:MiniBatchNMF",
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
    """Deprecated spelling of :func:`load_model` (warns)."""
    import warnings

    warnings.warn("deepnmf.io.model_files.load_any is deprecated; use deepnmf.load_model", DeprecationWarning,
                  stacklevel=2)
    return load_model(path)


# ------------------------------------------------------------------ checks
def check_tensors(
    tensors: dict[str, torch.Tensor],
    expected: dict[str, tuple[tuple[int, ...] | None, torch.dtype | None]],
    *,
    where: str | Path,
) -> None:
    """Refuse weights whose names, shapes or dtypes are not what a class expects.

    Parameters
    ----------
    tensors : dict of str -> torch.Tensor
        As returned by :func:`read_model`.
    expected : dict of str -> (shape or None, dtype or None)
        Every tensor the class needs; ``None`` leaves the shape or the
        dtype unchecked.
    where : str or Path
        The folder, named in the messages.

    Raises
    ------
    ModelFileError
        A tensor is missing, unexpected, or of another shape or dtype.
    """
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unexpected {', '.join(extra)}"] if extra else [])
        raise ModelFileError(f"{where}: the weights file {' and '.join(parts)}; it was not written for this model")
    for name, (shape, dtype) in expected.items():
        got = tensors[name]
        if shape is not None and tuple(got.shape) != tuple(shape):
            raise ModelFileError(f"{where}: tensor {name!r} has shape {tuple(got.shape)}, expected {tuple(shape)}")
        if dtype is not None and got.dtype != dtype:
            raise ModelFileError(f"{where}: tensor {name!r} is {got.dtype}, expected {dtype}")


# -------------------------------------------------------------- composites
def write_composite(
    path: str | Path,
    *,
    model: str,
    params: dict[str, Any],
    parts: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a composite model folder: each part saved in a sub-folder, then the folder's own config.

    Parameters
    ----------
    path : str or Path
        Folder to write.
    model : str
        Class name of the composite (a key of :data:`MODEL_CLASSES`).
    params : dict
        Its settings (JSON-able).
    parts : dict of str -> object or None
        Sub-folder name -> an object with ``save(path)``; ``None`` parts are skipped.
    state : dict, optional
        Other JSON-able attributes; ``"parts"`` is added (the saved part names).
    """
    folder = Path(path)
    saved = []
    for name, part in parts.items():
        if part is None:
            continue
        if not _PART_NAME.match(name):
            raise ModelFileError(f"part name {name!r} is not a plain folder name")
        if not hasattr(part, "save"):
            raise ModelFileError(f"the {name} part of a {model} ({type(part).__name__}) cannot be saved")
        part.save(folder / name)
        saved.append(name)
    return write_model(folder, model=model, params=params, tensors={}, state={**(state or {}), "parts": saved})


def read_composite(path: str | Path, *, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a folder written by :func:`write_composite`.

    Returns
    -------
    config : dict
        The composite's own configuration (as :func:`read_model`).
    parts : dict of str -> object
        Each part loaded with :func:`load_model`.

    Raises
    ------
    ModelFileError
        Any check of :func:`read_model`, tensors in the composite's own
        weights, a bad part list, or a part that fails to load.
    """
    config, tensors = read_model(path, model=model)
    if tensors:
        raise ModelFileError(f"{path}: a {model} folder holds no weights of its own, found {', '.join(sorted(tensors))}")
    names = config["state"].get("parts")
    if not isinstance(names, list) or not all(isinstance(n, str) and _PART_NAME.match(n) for n in names):
        raise ModelFileError(f"{Path(path) / CONFIG}: field state.parts must list the part folders, got {names!r}")
    return config, {name: load_model(Path(path) / name) for name in names}
