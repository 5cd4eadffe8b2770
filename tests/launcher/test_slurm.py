"""The slurm backend on the real local cluster (`bash scripts/slurm-local.sh start`; skipped without it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from launcher_helpers import child_run

from poptrain.errors import LaunchError
from poptrain.launcher.backends import JobState
from poptrain.launcher.backends.slurm import SlurmBackend
from poptrain.launcher.run import main

pytestmark = pytest.mark.slurm


def test_cli_submits_waits_and_records_jobs(slurm_cluster, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "slurm_sweep_mod.py").write_text(
        "import sys\n"
        "from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription\n"
        f"RUN_DESCRIPTION = RunDescription('sl', [Experiment('c', [sys.executable, {str(__import__('launcher_helpers').CHILD)!r}],"
        " ParamGrid([('x', ['a b', '$Y'])]))])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        ["--run", "slurm_sweep_mod", "--backend", "slurm", "--train_dir", str(tmp_path / "td"),
         "--slurm_workdir", str(tmp_path / "sw"), "--slurm_gpus_per_job", "0", "--slurm_cpus_per_gpu", "1", "--slurm_wait"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "summary: 2 completed" in out
    jobs = json.loads((tmp_path / "sw" / "sl" / "jobs.json").read_text())
    assert sorted(jobs) == ["00_c_x_a-b", "01_c_x_-Y"]
    for name, job_id in jobs.items():
        log = (tmp_path / "td" / "sl" / "c" / name / "log.txt").read_text()
        assert f"[launcher] slurm job {job_id} attempt 1 on " in log and f"child {name} done" in log
        record = json.loads((tmp_path / "td" / "sl" / "c" / name / "argv.json").read_text())
        assert record["argv"][0] in ("--x=a b", "--x=$Y")
        assert record["env"]["POPTRAIN_LAUNCH_ATTEMPT"] == "1"


def test_the_scancel_helper_cancels_the_run(slurm_cluster, tmp_path) -> None:
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, cpus_per_gpu=1, poll_interval_s=0.3)
    planned = list(child_run("long", [{"sleep": 120, "i": i} for i in range(3)]).plan(str(tmp_path / "td")))
    backend.submit(backend.render(planned))
    subprocess.run(["sh", backend.scancel_path], check=True)
    statuses = backend.wait(timeout_s=30)
    assert [s.state for s in statuses] == [JobState.CANCELLED] * 3


def test_a_job_asking_more_cpus_than_the_node_has_is_an_error_at_submission(slurm_cluster, tmp_path) -> None:
    """The local node registers its real CPU count: one more pends forever with reason PartitionConfig."""
    node_cpus = max(int(c) for c in subprocess.run(
        ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True).stdout.split())  # fmt: skip
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, cpus_per_task=node_cpus + 1)
    with pytest.raises(LaunchError) as info:
        backend.submit(backend.render(list(child_run("huge", [{}]).plan(str(tmp_path / "td")))))
    message = str(info.value)
    assert "can never start" in message and "PartitionConfig" in message, message
    assert f"--cpus-per-task={node_cpus + 1}" in message and "--slurm_cpus_per_task" in message
    job_id = backend.jobs()[0].id
    state = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in state or not state.strip()  # cancelled (or already purged)


def test_a_job_killed_at_its_time_limit_is_reported_as_timeout(slurm_cluster, tmp_path) -> None:
    """~60-95 s: SLURM limits are whole minutes and slurmctld checks them every 30 s."""
    backend = SlurmBackend(
        workdir=str(tmp_path / "sw"), gpus_per_job=0, cpus_per_gpu=1, timeout="1", poll_interval_s=1
    )
    planned = list(child_run("tl", [{"sleep": 600}]).plan(str(tmp_path / "td")))
    backend.submit(backend.render(planned))
    started = time.monotonic()
    statuses = backend.wait(timeout_s=150)
    assert statuses[0].state is JobState.TIMEOUT, statuses
    assert "TIMEOUT" in statuses[0].reason and "time limit" in statuses[0].reason
    assert time.monotonic() - started >= 55
    print(f"time-limit kill observed after {time.monotonic() - started:.0f} s", file=sys.stderr)
