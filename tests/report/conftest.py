"""Fixtures: synthetic populations written through the real Workspace API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import simulate  # noqa: E402

BEST_CONFIG = {"task": {"name": "Cartpole"}, "train": {"params": {"config": {"learning_rate": 0.0003}}}}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run dir like the launcher's: <train_dir>/<run>/<experiment base>/pbt_workspace (4 x 6)."""
    root = tmp_path / "train_dir" / "cartpole_pbt" / "cartpole" / "pbt_workspace"
    simulate(root, members=4, iterations=6, seed=0, config=BEST_CONFIG)
    return tmp_path / "train_dir"


@pytest.fixture
def workspace(run_dir: Path) -> Path:
    return run_dir / "cartpole_pbt" / "cartpole" / "pbt_workspace"
