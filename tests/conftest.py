"""Shared fixtures. Tests that need the real recordings skip without them, and fail under CI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnmf.datasets.paths import shared_data_dir
from deepnmf.exceptions import DataError


def _data_missing_reason() -> str | None:
    """Why the real recordings cannot be used (None when they are there)."""
    try:
        shared_data_dir()
    except DataError as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the real recordings (the ``data_dir`` fixture) ``shared_data``."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real data (``DEEPNMF_DATA`` or ``../shared/data``).

    Absent data skips the test with a one-line reason, except under CI (the
    environment variable ``CI`` set), where it fails: CI always has the data.
    """
    reason = _data_missing_reason()
    if reason is None:
        return shared_data_dir()
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the real data is missing: {reason}")
    pytest.skip(f"needs the real recordings: {reason}")


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
