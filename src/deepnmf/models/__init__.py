"""Estimators (scikit-learn style) on one base class."""
