"""Fixtures shared by every test folder: the local SLURM cluster (skips when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the cluster probes live with the launcher tests; the PBT slot tests submit to the same cluster
sys.path.insert(0, str(Path(__file__).parent / "launcher"))
from launcher_helpers import slurm_conf_or_reason  # noqa: E402


@pytest.fixture
def slurm_cluster(monkeypatch: pytest.MonkeyPatch) -> str:
    """SLURM_CONF of the running local cluster (skips the test when there is none)."""
    conf, reason = slurm_conf_or_reason()
    if conf is None:
        pytest.skip(reason)
    monkeypatch.setenv("SLURM_CONF", conf)
    return conf
