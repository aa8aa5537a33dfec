"""Small shared helpers: random generators, devices, arrays <-> tensors, validation.

These helpers never print, plot or touch files.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from deepnmf.exceptions import DataError, ParameterError

RandomState = "int | np.random.Generator | np.random.RandomState | torch.Generator | None"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu" | "cuda" | "cuda:N" | "auto" | None`` into a ``torch.device``.

    ``"auto"`` picks CUDA when available. Asking for CUDA on a machine without
    it raises :class:`ParameterError` instead of failing later inside torch.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "device='cuda' was requested but CUDA is not available; use device='cpu' or 'auto'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"unsupported device type {dev.type!r}; use 'cpu', 'cuda' or 'auto'")
    return dev


def seed_from(random_state: Any) -> int:
    """Draw a 63-bit integer seed from any accepted ``random_state``.

    ``None`` gives a fresh nondeterministic seed; an int is used as is; numpy
    and torch generators are advanced by one draw.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(random_state, (bool, np.bool_)):
        raise ParameterError("random_state must be None, an int or a generator, not a bool")
    if isinstance(random_state, numbers.Integral):
        if int(random_state) < 0:
            raise ParameterError(f"random_state must be nonnegative, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=random_state).item())
    raise ParameterError(
        "random_state must be None, an int, a numpy Generator/RandomState or a "
        f"torch.Generator, got {type(random_state).__name__}"
    )


def make_generator(random_state: Any, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded from ``random_state``.

    Library code never touches torch's global generator; every random draw
    takes the generator returned here.
    """
    device = torch.device(device)
    if isinstance(random_state, torch.Generator) and random_state.device == device:
        return random_state
    gen = torch.Generator(device=device)
    gen.manual_seed(seed_from(random_state))
    return gen


@dataclass(frozen=True)
class ArrayKind:
    """Remembers what the caller passed so results go back as the same kind."""

    kind: Literal["numpy", "torch"]
    dtype: Any
    device: torch.device | None = None


def as_tensor(
    X: Any,
    *,
    name: str = "X",
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    ndim: int | None = 2,
) -> tuple[torch.Tensor, ArrayKind]:
    """Convert an array-like to a floating tensor and remember its kind.

    Parameters
    ----------
    X : array-like or torch.Tensor
        Input data.
    name : str
        Name used in error messages.
    dtype : torch.dtype, optional
        Target dtype. By default float32 and float64 are kept as given and
        any other type becomes float64 (numpy) or float32 (torch).
    device : torch.device, optional
        Target device; by default the tensor's own (torch) or CPU (numpy).
    ndim : int or None
        Required number of dimensions.

    Returns
    -------
    T : torch.Tensor
    kind : ArrayKind
    """
    if isinstance(X, torch.Tensor):
        kind = ArrayKind("torch", X.dtype, X.device)
        T = X.detach()
        default = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    else:
        if hasattr(X, "toarray") and hasattr(X, "nnz"):
            raise DataError(
                f"Sparse input is not supported: {name} is a scipy sparse matrix; densify it with .toarray()"
            )
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name} could not be converted to an array: {err}") from err
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except TypeError as err:
                raise TypeError(f"{name} must be numeric: {err}") from err
            except ValueError as err:
                raise DataError(f"{name} must be numeric: {err}") from err
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise DataError(f"Complex data not supported: {name} must be real-valued; take the magnitude of complex spectra first")
        kind = ArrayKind("numpy", arr.dtype)
        default = torch.float32 if arr.dtype == np.float32 else torch.float64
        T = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32 if default == torch.float32 else np.float64))
    if torch.is_complex(T):
        raise DataError(f"Complex data not supported: {name} must be real-valued; take the magnitude of complex spectra first")
    target = dtype or default
    T = T.to(device=device or T.device, dtype=target)
    if ndim is not None and T.ndim != ndim:
        hint = " Reshape your data, e.g. X.reshape(1, -1) for a single sample." if ndim == 2 and T.ndim == 1 else ""
        raise DataError(f"{name} must be a {ndim}-D array, got {T.ndim}-D with shape {tuple(T.shape)}.{hint}")
    return T, kind


def to_kind(T: torch.Tensor, kind: ArrayKind) -> Any:
    """Return ``T`` as the kind of array the caller passed (numpy or torch, same device)."""
    if kind.kind == "torch":
        return T.to(kind.device) if kind.device is not None else T
    return T.detach().cpu().numpy()


def check_finite_nonnegative(T: torch.Tensor, name: str = "X", *, allow_empty: bool = False) -> None:
    """Raise :class:`DataError` if ``T`` is empty, has NaN/inf or negative entries."""
    if T.device.type == "cpu":  # numpy's single-pass checks; torch's threaded ones contend with BLAS threads
        _check_numpy(T.numpy(), name, allow_empty)
        return
    if T.numel() == 0 and not allow_empty:
        what = "feature(s)" if T.ndim == 2 and T.shape[0] > 0 else "sample(s)"
        raise DataError(
            f"{name} is empty: 0 {what} (shape={tuple(T.shape)}) while a minimum of 1 is required."
        )
    if not bool(torch.isfinite(T).all()):
        n_bad = int((~torch.isfinite(T)).sum())
        raise DataError(f"{name} contains {n_bad} NaN or infinite entries; clean or impute them first")
    if T.numel() and bool((T < 0).any()):
        raise DataError(
            f"Negative values in data passed to {name} (min {float(T.min()):.3g}); NMF needs nonnegative data, "
            "for example a magnitude spectrogram or a rectified envelope"
        )


def _check_numpy(A: np.ndarray, name: str, allow_empty: bool) -> None:
    if A.size == 0 and not allow_empty:
        what = "feature(s)" if A.ndim == 2 and A.shape[0] > 0 else "sample(s)"
        raise DataError(f"{name} is empty: 0 {what} (shape={tuple(A.shape)}) while a minimum of 1 is required.")
    if A.size == 0:
        return
    lo, hi = float(A.min()), float(A.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        n_bad = int((~np.isfinite(A)).sum())
        raise DataError(f"{name} contains {n_bad} NaN or infinite entries; clean or impute them first")
    if lo < 0:
        raise DataError(
            f"Negative values in data passed to {name} (min {lo:.3g}); NMF needs nonnegative data, "
            "for example a magnitude spectrogram or a rectified envelope"
        )


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """Raise :class:`ParameterError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Raise :class:`ParameterError` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_nonneg_float(value: Any, name: str) -> float:
    """Raise :class:`ParameterError` unless ``value`` is a finite real >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ParameterError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes of memory a fit on ``device`` may use: free GPU memory on CUDA, physical RAM on CPU (None if unknown)."""
    import os

    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(name: str, n_components: int, n_samples: int, n_features: int, *, n_values: float,
                     itemsize: int = 4, device: torch.device | None = None) -> None:
    """Refuse a fit whose memory would not fit, up front with an estimate; warn when the rank exceeds the samples.

    Parameters
    ----------
    name : str
        The estimator, for the messages.
    n_components, n_samples, n_features : int
        Rank and shape of ``X`` (frames x bins).
    n_values : float
        The estimator's estimate of the numbers it holds at once while
        fitting (factors, weights, optimiser state, buffers).
    itemsize : int
        Bytes per number (4 for float32, 8 for float64).
    device : torch.device, optional
        Where the fit runs (CUDA: free GPU memory; otherwise physical RAM).

    Raises
    ------
    ParameterError
        When ``n_values * itemsize`` exceeds the memory available.
    """
    need = float(n_values) * itemsize
    have = available_memory(device)
    if have is not None and need > have:
        raise ParameterError(
            f"{name} with n_components={n_components} on {n_samples} x {n_features} data needs about "
            f"{need / 2**30:.3g} GiB of memory, more than the {have / 2**30:.3g} GiB available on "
            f"{device or 'cpu'}; lower n_components (or the data size)"
        )
    if n_components > n_samples:
        import warnings

        warnings.warn(
            f"{name}: n_components={n_components} is more components than the {n_samples} samples (frames) of X; "
            "the factorisation is far from unique and the atoms will fit noise", UserWarning, stacklevel=3)


def check_scale(T: torch.Tensor, name: str = "X") -> None:
    """Refuse values so large that sums of their squares overflow ``T``'s dtype (which would give silent NaN).

    The bound is ``sqrt(finfo.max / numel)``: about 1.8e16 for a million
    float32 entries, far above any spectrogram or envelope.
    """
    if T.numel() == 0 or not T.dtype.is_floating_point:
        return
    bound = float(np.sqrt(torch.finfo(T.dtype).max / T.numel()))
    peak = float(T.abs().max())
    if peak > bound:
        raise DataError(
            f"{name} has values up to {peak:.3g}, too large for {str(T.dtype).replace('torch.', '')} arithmetic "
            f"(sums of squares overflow above {bound:.3g} for {T.numel()} entries); rescale {name} "
            "(for example divide by its maximum) or pass float64"
        )
