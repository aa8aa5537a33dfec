"""BaseNMF: what every deepnmf estimator shares.

Orientation (as scikit-learn): ``X`` is ``(n_samples, n_features)``, for
example frames x frequency bins or time points x muscles; ``components_`` is
the dictionary, ``(n_components, n_features)``; activations are
``(n_samples, n_components)``.

``__init__`` only stores arguments; ``fit`` validates them and the data;
fitted attributes end in ``_``. Subclasses implement ``_check_params``,
``_state_tensors`` and ``_set_state`` for saving and loading.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from deepnmf._utils import ArrayKind, as_tensor, check_finite_nonnegative, check_scale, resolve_device, to_kind
from deepnmf.exceptions import DataError, ModelFileError, NotFittedError, ParameterError
from deepnmf.io.model_files import check_tensors, read_model, write_model


class BaseNMF(TransformerMixin, BaseEstimator):
    """Shared machinery of deepnmf estimators (validation, devices, save/load)."""

    #: attribute that tells whether the estimator is fitted
    _fitted_attr: ClassVar[str] = "components_"
    #: constructor parameters of earlier versions that :meth:`load` drops when saved as null
    #: (VAENMF's ``callback``, now an argument of ``fit``)
    _legacy_params: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ data
    def _prepare_X(
        self, X: Any, *, reset: bool, name: str = "X", dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ArrayKind]:
        """Validate ``X`` and return it as a tensor on the estimator's device.

        With ``reset=True`` (fit) the feature count and dtype are recorded;
        otherwise (transform) ``X`` must have the fitted feature count and is
        cast to the fitted dtype.
        """
        device = resolve_device(getattr(self, "device", "cpu"))
        if not reset:
            self._check_is_fitted()
            dtype = dtype or self.dtype_
        T, kind = as_tensor(X, name=name, dtype=dtype, device=device)
        check_finite_nonnegative(T, name)
        check_scale(T, name)
        if reset:
            self.n_features_in_ = int(T.shape[1])
            self.dtype_ = T.dtype
            self.device_ = device
        elif T.shape[1] != self.n_features_in_:
            raise DataError(
                f"{name} has {T.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return T, kind

    @staticmethod
    def _output(T: torch.Tensor, kind: ArrayKind) -> Any:
        return to_kind(T, kind)

    def _check_is_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call fit before using it"
            )

    # ------------------------------------------------------------- save/load
    def _json_params(self) -> dict[str, Any]:
        """Constructor arguments in JSON form (generators become ``None``)."""
        params = {}
        for key, value in self.get_params(deep=False).items():
            if key == "random_state" and not (value is None or isinstance(value, numbers.Integral)):
                value = None
            elif isinstance(value, (np.integer, np.floating)):
                value = value.item()
            elif isinstance(value, torch.device):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif callable(value):
                value = None
            params[key] = value
        return params

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        """Fitted tensors to save; subclasses extend."""
        raise NotImplementedError

    def _state_json(self) -> dict[str, Any]:
        """Fitted JSON-able attributes to save; subclasses extend."""
        return {
            "n_features_in_": int(self.n_features_in_),
            "dtype_": str(self.dtype_).replace("torch.", ""),
            "n_iter_": int(getattr(self, "n_iter_", 0)),
            "loss_curve_": [float(v) for v in getattr(self, "loss_curve_", [])],
        }

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore fitted attributes from :meth:`_state_tensors` / :meth:`_state_json`."""
        raise NotImplementedError

    def _restore_common(self, state: dict[str, Any]) -> torch.device:
        try:
            self.n_features_in_ = int(state["n_features_in_"])
            self.dtype_ = {"float32": torch.float32, "float64": torch.float64}[state["dtype_"]]
            self.n_iter_ = int(state.get("n_iter_", 0))
            self.loss_curve_ = [float(v) for v in state.get("loss_curve_", [])]
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"model configuration is missing or has a bad fitted field: {err}") from err
        self.device_ = resolve_device(getattr(self, "device", "cpu"))
        return self.device_

    def save(self, path: str | Path) -> Path:
        """Save the fitted model to a folder (``weights.safetensors`` + ``config.json``).

        Returns the folder path. Load it back with ``type(self).load(path)``.
        """
        self._check_is_fitted()
        return write_model(
            path,
            model=type(self).__name__,
            params=self._json_params(),
            tensors=self._state_tensors(),
            state=self._state_json(),
        )

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None):
        """Load a model folder written by :meth:`save`; never unpickles or executes code.

        Parameters
        ----------
        path : str or Path
            The model folder.
        device : str, optional
            Override the saved device (for example load a GPU-trained model on CPU).
        """
        config, tensors = read_model(path, model=cls.__name__)
        params = dict(config["params"])
        for name in cls._legacy_params:
            if name in params and params[name] is None:
                del params[name]
        if device is not None:
            params["device"] = device
        try:
            est = cls(**params)
        except TypeError as err:
            raise ModelFileError(f"{path}: saved parameters do not fit {cls.__name__}: {err}") from err
        try:
            est._set_state(tensors, config["state"])
        except KeyError as err:
            raise ModelFileError(f"{path}: weights file lacks tensor {err}") from err
        except (DataError, ParameterError, RuntimeError) as err:
            raise ModelFileError(f"{path}: the weights do not fit the saved configuration: {err}") from err
        # the names, shapes and dtypes the restored model would save must be the file's
        check_tensors(tensors, {k: (tuple(v.shape), v.dtype) for k, v in est._state_tensors().items()}, where=path)
        return est
