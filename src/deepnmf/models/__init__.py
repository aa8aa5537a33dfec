"""Estimators (scikit-learn style) on one base class, and the one model factory."""
from deepnmf.models.factory import MODELS, make_estimator, model_class
from deepnmf.models.rank import RankSelection, select_rank

__all__ = ["MODELS", "RankSelection", "make_estimator", "model_class", "select_rank"]
