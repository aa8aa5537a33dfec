"""Shared fixtures. Tests that need the real recordings fail loudly when they are missing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnmf.datasets.paths import shared_data_dir
from deepnmf.exceptions import DataError


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real data (``DEEPNMF_DATA`` or ``../shared/data``); fails, never skips."""
    try:
        return shared_data_dir()
    except DataError as err:  # CI always has ../shared: a missing folder is an error
        pytest.fail(f"real data is required for this test: {err}")


#: torch.compile on CPU builds C++: its tests need a compiler (the project's machines have g++).
needs_cxx = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c),
    reason="ImplicitNMF(compile=True) needs a C++ compiler, none found on PATH",
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def torch_gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
