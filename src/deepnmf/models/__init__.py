"""Estimators (scikit-learn style) on one base class, and the one model factory."""
from deepnmf.models.factory import MODELS, make_estimator, model_class

__all__ = ["MODELS", "make_estimator", "model_class"]
