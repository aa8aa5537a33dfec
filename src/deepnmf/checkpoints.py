"""Training checkpoints: safetensors + JSON, written atomically, read back to resume a fit.

A checkpoint folder (``OUT/checkpoint/`` for ``deepnmf train``) holds

- ``state-<epoch>.safetensors``: every tensor of the training state (the
  model's weights, the optimiser's moments, the random generator's state,
  the best weights so far...);
- ``checkpoint.json``: ``{"format": "deepnmf-checkpoint", "format_version":
  1, "kind": <which loop>, "epoch": ..., "tensors": <file name>,
  "tensors_sha256": ..., "signature": {...}, "state": <the JSON tree>}``.

Writing goes: tensors to a temporary file, ``fsync``, rename; then the JSON
the same way; then the older tensor files are removed. The rename of
``checkpoint.json`` is the commit: a process killed at any moment leaves
either the previous checkpoint or the new one, complete. Nothing is ever
pickled: the state is split into a JSON tree and named tensors
(:func:`split_state` / :func:`join_state`).

Every training loop takes the same :class:`Checkpointer`: the one loop for
torch modules (:func:`deepnmf.training.fit_module`), the iN-NMF loops
(:mod:`deepnmf.models._implicit_training`) and NMF's iterations.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepnmf.exceptions import ModelFileError, ParameterError
from deepnmf.io.model_files import atomic_write_bytes

FORMAT = "deepnmf-checkpoint"
FORMAT_VERSION = 1
INDEX = "checkpoint.json"
#: the folder ``deepnmf train --checkpoint-every`` writes inside ``--out``
FOLDER = "checkpoint"
_TENSOR, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__tuple__", "__items__", "__float__"


# ------------------------------------------------------------ state <-> tensors + JSON
def split_state(tree: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "s") -> tuple[Any, dict]:
    """Split a nested state (dicts, lists, tuples, numbers, strings, tensors) into JSON and named tensors.

    Tensors become ``{"__tensor__": name}``; tuples ``{"__tuple__": [...]}``;
    dicts with keys that are not strings (an optimiser's parameter indices)
    ``{"__items__": [[key, value], ...]}``; non-finite floats
    ``{"__float__": "inf"}``.

    Returns
    -------
    json_tree : JSON-able object
    tensors : dict of str -> torch.Tensor (CPU, contiguous)
    """
    tensors = {} if tensors is None else tensors
    if isinstance(tree, torch.Tensor):
        name = f"{prefix}.{len(tensors)}"
        tensors[name] = tree.detach().to("cpu").contiguous().clone()
        return {_TENSOR: name}, tensors
    if isinstance(tree, dict):
        if all(isinstance(k, str) for k in tree):
            return {k: split_state(v, tensors, prefix)[0] for k, v in tree.items()}, tensors
        return {_ITEMS: [[k, split_state(v, tensors, prefix)[0]] for k, v in tree.items()]}, tensors
    if isinstance(tree, (list, tuple)):
        items = [split_state(v, tensors, prefix)[0] for v in tree]
        return ({_TUPLE: items} if isinstance(tree, tuple) else items), tensors
    if isinstance(tree, float) and not math.isfinite(tree):
        return {_FLOAT: repr(tree)}, tensors
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree, tensors
    raise ParameterError(f"a checkpoint cannot hold a {type(tree).__name__}")


def join_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_state`."""
    if isinstance(tree, list):
        return [join_state(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if set(tree) == {_TENSOR}:
        if tree[_TENSOR] not in tensors:
            raise ModelFileError(f"the checkpoint's tensor file lacks {tree[_TENSOR]!r}")
        return tensors[tree[_TENSOR]]
    if set(tree) == {_TUPLE}:
        return tuple(join_state(v, tensors) for v in tree[_TUPLE])
    if set(tree) == {_ITEMS}:
        return {k: join_state(v, tensors) for k, v in tree[_ITEMS]}
    if set(tree) == {_FLOAT}:
        return float(tree[_FLOAT])
    return {k: join_state(v, tensors) for k, v in tree.items()}


# ------------------------------------------------------------------- files
def write_checkpoint(folder: str | Path, *, kind: str, epoch: int, state: dict[str, Any],
                     signature: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically into ``folder`` (created) and return the path of its JSON.

    Parameters
    ----------
    folder : str or Path
    kind : str
        Which loop wrote it (``"fit_module"``, ``"implicit-grid"``...); checked on read.
    epoch : int
        Epochs (iterations) completed.
    state : dict
        Anything :func:`split_state` takes.
    signature : dict, optional
        JSON-able description of the run (model, settings, data shape);
        a resume with another signature is refused.
    """
    from safetensors.torch import save as save_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tree, tensors = split_state(state)
    blob = save_bytes(tensors)
    name = f"state-{int(epoch):08d}.safetensors"
    atomic_write_bytes(folder / name, blob)
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "epoch": int(epoch),
             "tensors": name, "tensors_sha256": hashlib.sha256(blob).hexdigest(), "signature": signature or {},
             "state": tree}
    text = json.dumps(index, indent=1, allow_nan=False)
    atomic_write_bytes(folder / INDEX, (text + "\n").encode())
    for old in folder.glob("state-*.safetensors"):  # the committed index no longer names them
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / INDEX


def read_checkpoint(folder: str | Path, *, kind: str, signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read the checkpoint in ``folder``: ``{"epoch": int, "state": dict}``.

    Raises
    ------
    ModelFileError
        No checkpoint, a damaged one (JSON, checksum, tensors), one of
        another loop, or one whose signature differs from ``signature``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    folder = Path(folder)
    if not (folder / INDEX).is_file():
        raise ModelFileError(f"{folder} holds no checkpoint ({INDEX}); train with a checkpoint interval first")
    try:
        index = json.loads((folder / INDEX).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{folder / INDEX} is not valid JSON: {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{folder / INDEX} is not a deepnmf checkpoint of format version {FORMAT_VERSION}")
    if index.get("kind") != kind:
        raise ModelFileError(f"{folder} holds a checkpoint of {index.get('kind')!r} training, not {kind!r}")
    if signature is not None and index.get("signature") != json.loads(json.dumps(signature)):
        raise ModelFileError(f"the checkpoint in {folder} was written by another run (other model settings "
                             "or data); resume with the same settings or start afresh without --resume")
    path = folder / str(index.get("tensors", ""))
    blob = path.read_bytes() if path.is_file() and path.parent == folder else b""
    if hashlib.sha256(blob).hexdigest() != index.get("tensors_sha256"):
        raise ModelFileError(f"{path} is missing or does not match the checksum in {INDEX}; the checkpoint is damaged")
    try:
        tensors = load_bytes(blob)
    except (SafetensorError, ValueError) as err:
        raise ModelFileError(f"{path} cannot be read: {err}") from err
    return {"epoch": int(index["epoch"]), "state": join_state(index["state"], tensors)}


@dataclass
class Checkpointer:
    """When and where a training loop writes checkpoints, and whether it resumes from one.

    Parameters
    ----------
    folder : str or Path
        The checkpoint folder.
    every : int
        Write after every ``every``-th epoch (and after the last); 0 writes none.
    resume : bool
        Start from the checkpoint in ``folder`` (an error when there is none).
    signature : dict
        JSON-able description of the run, stored and compared on resume.
    """

    folder: str | Path
    every: int = 0
    resume: bool = False
    signature: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ParameterError(f"checkpoint_every must be an integer >= 0, got {self.every!r}")
        self.folder = Path(self.folder)

    def due(self, epoch: int, last: int) -> bool:
        """True when a checkpoint is written after ``epoch`` (of ``last``)."""
        return self.every > 0 and (epoch % self.every == 0 or epoch == last)

    def save(self, kind: str, epoch: int, state: dict[str, Any]) -> None:
        """Write the state after ``epoch`` (see :func:`write_checkpoint`)."""
        write_checkpoint(self.folder, kind=kind, epoch=epoch, state=state, signature=self.signature)

    def restore(self, kind: str) -> dict[str, Any] | None:
        """The checkpoint to resume from (``{"epoch", "state"}``), or None when not resuming."""
        if not self.resume:
            return None
        return read_checkpoint(self.folder, kind=kind, signature=self.signature)


def make_checkpointer(checkpoint_dir: str | Path | None, checkpoint_every: int, resume: bool,
                      signature: dict[str, Any]) -> Checkpointer | None:
    """What an estimator's ``fit(checkpoint_dir=, checkpoint_every=, resume=)`` builds (None without a folder)."""
    if checkpoint_dir is None:
        if resume or checkpoint_every:
            raise ParameterError("checkpoint_every and resume need checkpoint_dir=, the checkpoint folder")
        return None
    return Checkpointer(checkpoint_dir, checkpoint_every, resume, signature)


def data_signature(T: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and SHA-256 of a data tensor, so that a resume on other data is refused."""
    data = T.detach().to("cpu").contiguous()
    digest = hashlib.sha256(data.numpy().data if data.numel() else b"").hexdigest()  # the buffer itself, no copy
    return {"shape": list(data.shape), "dtype": str(data.dtype), "sha256": digest}


def run_signature(estimator: Any, data: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a checkpoint of ``estimator`` records of its run: class, parameters (but the length and
    reporting of training, which a resume may change) and the data's :func:`data_signature`."""
    skip = {"max_epochs", "max_iter", "verbose", "device", "compile", *ignore}
    params = {k: v for k, v in estimator._json_params().items() if k not in skip}
    return {"model": type(estimator).__name__, "params": params, "data": data}


def stops_at(losses: list[float], n_iter: int, tol: float) -> bool:
    """Whether NMF's solvers stop after iteration ``n_iter`` with these objectives (their own rule)."""
    from deepnmf.solvers._kernels import _stop

    return _stop(losses, n_iter, tol)


class FactorCheckpoints:
    """Checkpoints of a solver that updates ``W`` and ``H`` in place and reports every iteration (NMF).

    The solver itself is not touched: the checkpoints are written from its
    callback (``W``, ``H``, the iteration count and the objective so far),
    and a resume restarts it from the saved factors for the remaining
    iterations, with the tolerance rescaled so that scikit-learn's stopping
    rule (the decrease over 10 iterations relative to the *initial*
    objective, checked every 10 iterations) decides as in the uninterrupted
    run. Checkpoints fall on multiples of 10 iterations for that reason.

    Parameters
    ----------
    checkpointer : Checkpointer
    max_iter : int
        Iterations of the whole run.
    tol : float
        Its tolerance.
    """

    KIND = "nmf"

    def __init__(self, checkpointer: Checkpointer, max_iter: int, tol: float) -> None:
        if checkpointer.every % 10:
            raise ParameterError(f"NMF checkpoints fall on multiples of 10 iterations (its stopping rule is checked "
                                 f"every 10); got checkpoint_every={checkpointer.every}")
        self.checkpointer, self.max_iter, self.tol = checkpointer, int(max_iter), float(tol)
        self.done, self.losses = 0, []

    def start(self, W: torch.Tensor, H: torch.Tensor, initial: Any) -> tuple[int, float]:
        """Restore ``W`` and ``H`` in place when resuming; the iterations left and the tolerance to run with.

        ``initial()`` gives the objective at the starting factors (called on a fresh run only).
        """
        restored = self.checkpointer.restore(self.KIND)
        if restored is None:
            self.losses = [float(initial())]
            return self.max_iter, self.tol
        state = restored["state"]
        for name, target in (("W", W), ("H", H)):
            if tuple(state[name].shape) != tuple(target.shape):
                raise ModelFileError(f"the checkpoint's {name} has shape {tuple(state[name].shape)}, this fit "
                                     f"{tuple(target.shape)}; resume with the same data and n_components")
            target.copy_(state[name])
        self.done, self.losses = restored["epoch"], [float(v) for v in state["losses"]]
        if state.get("converged"):  # the checkpointed run had stopped at its tolerance: nothing left to run
            return 0, self.tol
        err = lambda v: math.sqrt(max(2.0 * v, 0.0))  # noqa: E731 - the stopping rule's error
        scale = err(self.losses[0]) / max(err(self.losses[-1]), 1e-300)
        return max(self.max_iter - self.done, 0), self.tol * scale

    def callback(self, W: torch.Tensor, H: torch.Tensor, user: Any) -> Any:
        """The solver's callback: numbers iterations of the whole run, writes due checkpoints, then calls ``user``."""
        def on_iteration(info: Any) -> Any:
            info.epoch, info.max_epochs = info.epoch + self.done, self.max_iter
            self.losses.append(float(info.train["loss"]))
            converged = stops_at(self.losses, info.epoch, self.tol)  # the solver stops after this iteration
            if self.checkpointer.due(info.epoch, self.max_iter) or converged:
                self.checkpointer.save(self.KIND, info.epoch, {"W": W, "H": H, "losses": self.losses,
                                                               "converged": converged})
            return user(info) if user is not None else None

        return on_iteration

    def finish(self, n_iter: int) -> tuple[int, list[float]]:
        """Iterations and objective curve of the whole run (``[initial, after 1, ...]``)."""
        return self.done + int(n_iter), list(self.losses)


def factor_checkpoints(estimator: Any, X: torch.Tensor, max_iter: int,
                       checkpoint: tuple | None) -> FactorCheckpoints | None:
    """The :class:`FactorCheckpoints` of an NMF fit's ``(checkpoint_dir, checkpoint_every, resume)`` (None: none)."""
    if checkpoint is None:
        return None
    folder, every, resume = checkpoint
    signature = run_signature(estimator, data_signature(X)) if folder is not None else {}
    checkpointer = make_checkpointer(folder, every, resume, signature)
    if checkpointer is None:
        return None
    if getattr(estimator, "_solver", "mu") != "mu":  # coordinate descent keeps state beyond W and H
        raise ParameterError(f"NMF checkpoints resume exactly with the multiplicative updates only; this fit runs "
                             f"solver {estimator._solver!r}: pass solver='mu'")
    return FactorCheckpoints(checkpointer, max_iter, getattr(estimator, "tol", 0.0))
