"""The ``gpu``-marked tests (tests/gpu/) and the device they run on.

Every module here sets ``pytestmark = pytest.mark.gpu``: the default ``pytest`` (addopts ``-m 'not slow and not
gpu'``) deselects them, ``pytest -m gpu`` selects them and, without CUDA, skips each one with the reason.
``POPTRAIN_GPU_TEST_DEVICE=cpu pytest -m gpu tests/gpu`` runs the same tests on the CPU (smaller sizes): that
proves the tests' own code on a machine without a GPU, never a CUDA property.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from gpu_helpers import chosen_device  # noqa: E402


@pytest.fixture(scope="session")
def device() -> str:
    name = chosen_device()
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"needs a CUDA device (torch.cuda.is_available() is False; torch {torch.__version__})")
    return name
