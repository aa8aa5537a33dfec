"""Data: where the real recordings live, and generators with known ground truth."""
from deepnmf.datasets.paths import shared_data_dir

__all__ = ["shared_data_dir"]
