"""Fixtures for the launcher tests: the local Ray cluster (skips when absent), a fake ngc on PATH (the SLURM
cluster fixture is in tests/conftest.py)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from launcher_helpers import HERE, ray_address_or_reason


@pytest.fixture
def ray_cluster() -> str:
    """HOST:PORT of the local Ray head (scripts/ray-local.sh). Skips without one, except where
    POPTRAIN_REQUIRE_RAY=1 (CI sets it after starting the head): there a missing head is a failure."""
    address, reason = ray_address_or_reason()
    if address is None:
        if os.environ.get("POPTRAIN_REQUIRE_RAY") == "1":
            pytest.fail(f"POPTRAIN_REQUIRE_RAY=1 but {reason}")
        pytest.skip(reason)
    return address


@pytest.fixture
def fake_ngc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Puts a recording ``ngc`` on PATH; returns its state folder (calls.jsonl, jobs/)."""
    bin_dir = tmp_path / "fake_bin"
    state = tmp_path / "fake_ngc_state"
    bin_dir.mkdir()
    state.mkdir()
    ngc = bin_dir / "ngc"
    ngc.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_ngc.py"} "$@"\n')
    ngc.chmod(ngc.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NGC_DIR", str(state))
    return state
