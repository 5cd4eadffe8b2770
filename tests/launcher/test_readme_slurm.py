"""The README's SLURM command works as written on the local one-node cluster (2 CPUs here).

Before ``--slurm_cpus_per_task`` every CPU-only job asked ``--slurm_cpus_per_gpu``'s default of 4 CPUs: on a
2-CPU node all of them pended forever with reason PartitionConfig while the launcher said nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_slurm_command() -> list[str]:
    lines = [ln.strip() for ln in README.read_text().splitlines() if ln.startswith("poptrain-launch ")]
    slurm = [ln for ln in lines if "--backend slurm" in ln]
    assert len(slurm) == 1, slurm
    argv = shlex.split(slurm[0], comments=True)
    launch = Path(sys.executable).with_name("poptrain-launch")
    return [str(launch) if launch.exists() else "poptrain-launch", *argv[1:]]


def job_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %r", "-j", ",".join(job_ids)],
                         capture_output=True, text=True).stdout  # fmt: skip
    return {f[0]: f"{f[1]} {f[2]}" for f in (ln.split() for ln in out.splitlines()) if len(f) >= 3}


def submit(tmp_path: Path) -> list[str]:
    proc = subprocess.run(readme_slurm_command(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = json.loads(next((tmp_path / "slurm").glob("*/jobs.json")).read_text())
    assert len(jobs) == 4, jobs
    return list(jobs.values())


def test_the_readme_slurm_command_submits_jobs_that_start(slurm_cluster, tmp_path) -> None:
    ids = submit(tmp_path)
    try:
        deadline = time.monotonic() + 240
        states = job_states(ids)
        while not any(s.startswith("RUNNING") for s in states.values()) and len(states) == len(ids):
            assert time.monotonic() < deadline, states
            assert not any("PartitionConfig" in s for s in states.values()), states
            time.sleep(1)
            states = job_states(ids)
    finally:
        subprocess.run(["scancel", *ids], check=False)


@pytest.mark.slow
def test_the_readme_slurm_command_completes(slurm_cluster, tmp_path) -> None:
    """~3-5 min: 4 members of 200 epochs, 2 at a time on the 2-CPU node."""
    ids = submit(tmp_path)
    try:
        deadline = time.monotonic() + 1500
        while job_states(ids):
            assert time.monotonic() < deadline, job_states(ids)
            time.sleep(5)
    finally:
        subprocess.run(["scancel", *ids], check=False)
    status = subprocess.run([sys.executable, "-m", "poptrain", "status", "--json",
                             str(tmp_path / "train_dir" / "cartpole_pbt" / "cartpole")],
                            capture_output=True, text=True)  # fmt: skip
    assert status.returncode == 0, status.stderr
    members = json.loads(status.stdout)["members"]
    assert [m["state"] for m in members] == ["finished"] * 4, members
