"""Template rendering compared with expected text; sbatch/ngc failures; SLURM state parsing."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import Job, JobState, JobStatus
from poptrain.launcher.backends.ngc import NgcBackend, map_ngc_status
from poptrain.launcher.backends.slurm import SlurmBackend, map_slurm_state, parse_scontrol_jobs
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription


def _planned(env_vars=None):
    rd = RunDescription(
        "sweep", [Experiment("cp", ["python", "-m", "poptrain.train"], ParamGrid([("lr", [0.001, "a b"])]), env_vars)],
        experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    )  # fmt: skip
    return list(rd.plan("/td", makedirs=False))


def test_default_sbatch_script_is_exactly_as_expected() -> None:
    backend = SlurmBackend(
        workdir="/sw", gpus_per_job=2, cpus_per_gpu=3, partition="gpu", timeout="1:00:00", mem="8G",
        requeue=True, cwd="/my dir",
    )  # fmt: skip
    rendered = backend.render(_planned(env_vars={"OMP_NUM_THREADS": "1", "X": "a b"}))
    assert rendered[1].path == "/sw/sweep/01_cp_lr_a-b.sbatch"
    assert rendered[1].argv == ["sbatch", "--parsable", "/sw/sweep/01_cp_lr_a-b.sbatch"]
    assert rendered[1].text == (
        "#!/bin/bash\n"
        "#SBATCH --job-name=sweep-01_cp_lr_a-b\n"
        "#SBATCH --output=/td/sweep/cp/01_cp_lr_a-b/log.txt\n"
        "#SBATCH --open-mode=append\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=6\n"
        "#SBATCH --gres=gpu:2\n"
        "#SBATCH --partition=gpu\n"
        "#SBATCH --time=1:00:00\n"
        "#SBATCH --mem=8G\n"
        "#SBATCH --requeue\n"
        "# poptrain experiment 01_cp_lr_a-b of run sweep\n"
        "set -eo pipefail\n"
        "cd '/my dir'\n"
        "export OMP_NUM_THREADS=1\n"
        "export X='a b'\n"
        "export POPTRAIN_LAUNCH_ATTEMPT=$(( ${SLURM_RESTART_COUNT:-0} + 1 ))\n"
        'echo "[launcher] slurm job ${SLURM_JOB_ID} attempt ${POPTRAIN_LAUNCH_ATTEMPT} on $(hostname): 01_cp_lr_a-b"\n'
        "exec python -m poptrain.train 'lr=a b' experiment=01_cp_lr_a-b train_dir=/td/sweep/cp\n"
    )


def test_cpu_only_jobs_request_no_gpu_and_no_time_limit() -> None:
    text = SlurmBackend(gpus_per_job=0, cpus_per_gpu=2).render(_planned())[0].text
    # --slurm_cpus_per_gpu applies to GPU jobs only; a CPU-only job asks --slurm_cpus_per_task (default 1)
    assert "--gres" not in text and "--time" not in text and "#SBATCH --cpus-per-task=1\n" in text
    assert "#SBATCH --no-requeue\n" in text
    text = SlurmBackend(gpus_per_job=0, cpus_per_task=3).render(_planned())[0].text
    assert "#SBATCH --cpus-per-task=3\n" in text


def _fake_scontrol(tmp_path: Path, monkeypatch, lines: list[str]) -> Path:
    """A scontrol printing ``lines`` (one job each) and an scancel recording its arguments."""
    bin_dir = tmp_path / "bin_sc"
    bin_dir.mkdir()
    out = tmp_path / "scontrol_out"
    out.write_text("".join(line + "\n" for line in lines))
    cancelled = tmp_path / "scancel_calls"
    for name, body in (
        ("scontrol", f"cat {shlex.quote(str(out))}"),
        ("scancel", f'echo "$@" >> {shlex.quote(str(cancelled))}'),
    ):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return cancelled


def test_a_job_that_can_never_start_fails_naming_the_reason_and_is_cancelled(tmp_path, monkeypatch) -> None:
    calls = _fake_sbatch(tmp_path, monkeypatch, fail_on="nothing")
    cancelled = _fake_scontrol(tmp_path, monkeypatch, [
        "JobId=101 JobName=a JobState=PENDING Reason=ReqNodeNotAvail,_UnavailableNodes:n1 NumCPUs=1",
        "JobId=102 JobName=b JobState=PENDING Reason=Resources NumCPUs=1",
        "JobId=103 JobName=c JobState=RUNNING Reason=None NumCPUs=1",
    ])  # fmt: skip
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, poll_interval_s=0.01)
    with pytest.raises(
        LaunchError,
        match=r"1 job\(s\) can never start.*\n  00_e_k_ok1 \[job 101\]: can never start: "
        r"SLURM pending reason ReqNodeNotAvail,_UnavailableNodes:n1: the nodes it needs are down",
    ):
        backend.submit(backend.render(_three(tmp_path)))
    assert len(calls.read_text().splitlines()) == 3
    assert cancelled.read_text() == "101\n"  # only the doomed job; Resources is ordinary waiting
    states = [j.state for j in backend.jobs()]
    assert states == [JobState.FAILED, JobState.PENDING, JobState.RUNNING]


def test_a_never_start_reason_must_persist_for_a_few_polls(tmp_path, monkeypatch) -> None:
    _fake_sbatch(tmp_path, monkeypatch, fail_on="nothing")
    _fake_scontrol(tmp_path, monkeypatch, ["JobId=101 JobState=PENDING Reason=PartitionConfig NumCPUs=4"])
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, never_start_polls=3)
    rendered = backend.render(_three(tmp_path)[:1])[0]
    backend._jobs = [Job(backend=backend, rendered=rendered, status=JobStatus(name="x", job_id="101"))]
    assert [s.state for s in (backend.poll(), backend.poll())[-1]] == [JobState.PENDING]
    third = backend.poll()[0]
    assert third.state is JobState.FAILED and "PartitionConfig" in third.reason
    assert "--slurm_cpus_per_task" in third.reason and "asked --cpus-per-task=4" in third.reason


def test_a_user_template_fills_documented_placeholders(tmp_path) -> None:
    template = "#!/bin/sh\n#SBATCH -J {{ job_name }}\n{{cmd}} > {{output_dir}}/out # {{gpus_per_job}}\n"
    text = SlurmBackend(template=template, gpus_per_job=0).render(_planned())[0].text
    assert text == (
        "#!/bin/sh\n#SBATCH -J sweep-00_cp_lr_0.001\n"
        "python -m poptrain.train lr=0.001 experiment=00_cp_lr_0.001 train_dir=/td/sweep/cp > /td/sweep/cp/00_cp_lr_0.001/out # 0\n"
    )


def test_unknown_placeholders_are_named() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown placeholder\(s\) \{\{gpu_count\}\}, \{\{nodes\}\}; valid: \{\{sbatch_options\}\}",
    ):
        SlurmBackend(template="{{cmd}} {{gpu_count}} {{nodes}} {{cmd}}", template_source="tpl.sh")
    with pytest.raises(ConfigError, match=r"\{\{workdir\}\}"):
        NgcBackend(template="ngc batch run {{workdir}}")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gpus_per_job": -1}, "--slurm_gpus_per_job -1"),
        ({"cpus_per_gpu": 0}, "--slurm_cpus_per_gpu 0"),
        ({"timeout": "an hour"}, "--slurm_timeout 'an hour'"),
        ({"mem": "8 GB"}, "--slurm_mem '8 GB'"),
    ],
)
def test_bad_slurm_options_name_the_value(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SlurmBackend(**kwargs)


def _fake_sbatch(tmp_path: Path, monkeypatch, fail_on: str) -> Path:
    """An sbatch that fails for scripts whose name contains ``fail_on`` and records every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls"
    script = bin_dir / "sbatch"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {shlex.quote(str(calls))}\n'
        f'case "$2" in *{fail_on}*) echo "sbatch: error: Batch job submission failed: Invalid partition" >&2; exit 1;; esac\n'
        "echo $(( $(wc -l < " + shlex.quote(str(calls)) + ") + 100 ))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    scontrol = bin_dir / "scontrol"  # knows no job: submit's can-it-start check sees nothing pending
    scontrol.write_text("#!/bin/sh\nexit 0\n")
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def _three(tmp_path):
    rd = RunDescription("r3", [Experiment("e", ["true"], ParamGrid([("k", ["ok1", "BAD", "ok2"])]))])
    return list(rd.plan(str(tmp_path / "td")))


def test_a_failed_sbatch_is_reported_and_the_rest_still_submitted(tmp_path, monkeypatch) -> None:
    calls = _fake_sbatch(tmp_path, monkeypatch, fail_on="k_BAD")
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, cpus_per_gpu=1)
    backend.submit(backend.render(_three(tmp_path)))
    statuses = {j.name: j.status for j in backend.jobs()}
    assert len(calls.read_text().splitlines()) == 3
    assert statuses["01_e_k_BAD"].state is JobState.FAILED
    assert "Invalid partition" in statuses["01_e_k_BAD"].reason
    assert json.loads((tmp_path / "sw" / "r3" / "jobs.json").read_text()) == {
        "00_e_k_ok1": "101",
        "02_e_k_ok2": "103",
    }
    assert (tmp_path / "sw" / "r3" / "scancel.sh").read_text().endswith("exec scancel 101 103\n")
    assert (tmp_path / "sw" / "r3" / "00_e_k_ok1.sbatch").read_text().startswith("#!/bin/bash\n")


def test_stop_on_error_submits_nothing_after_the_failure(tmp_path, monkeypatch) -> None:
    calls = _fake_sbatch(tmp_path, monkeypatch, fail_on="k_BAD")
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0, cpus_per_gpu=1, stop_on_error=True)
    with pytest.raises(
        LaunchError, match=r"(?s)Invalid partition.*submitted before the error: \['00_e_k_ok1'\]"
    ):
        backend.submit(backend.render(_three(tmp_path)))
    assert len(calls.read_text().splitlines()) == 2
    assert [j.state for j in backend.jobs()] == [JobState.PENDING, JobState.FAILED, JobState.CANCELLED]


def test_scontrol_output_maps_to_states() -> None:
    text = (
        "JobId=7 JobName=a UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Restarts=0 "
        "ExitCode=0:15 RunTime=00:01:31 TimeLimit=00:01:00\n"
        "JobId=8 JobName=b JobState=COMPLETED Reason=None ExitCode=0:0 RunTime=1-00:00:02 Restarts=2\n"
        "JobId=9 JobName=c JobState=FAILED Reason=NonZeroExitCode ExitCode=5:0\n"
    )
    jobs = parse_scontrol_jobs(text)
    assert set(jobs) == {"7", "8", "9"} and jobs["9"]["ExitCode"] == "5:0"
    assert map_slurm_state("CANCELLED by 0") is JobState.CANCELLED
    assert map_slurm_state("TIMEOUT") is JobState.TIMEOUT
    assert (
        map_slurm_state("PENDING") is JobState.PENDING and map_slurm_state("COMPLETING") is JobState.RUNNING
    )
    status = JobStatus(name="a")
    SlurmBackend._update(status, jobs["7"])
    assert (
        status.state is JobState.TIMEOUT
        and "time limit 00:01:00" in status.reason
        and status.exit_code == 143
    )
    SlurmBackend._update(status, jobs["8"])
    assert status.state is JobState.COMPLETED and status.restarts == 2 and status.runtime_s == 86402


def test_default_ngc_command_is_exactly_as_expected() -> None:
    backend = NgcBackend(
        instance="dgxa100.80g.1.norm", image="nvcr.io/x/y:1", workspace="ws1", workdir="/workspace/code"
    )
    rendered = backend.render(_planned(env_vars={"K": "v w"}))
    assert rendered[1].text == (
        "ngc batch run --name sweep-01_cp_lr_a-b --instance dgxa100.80g.1.norm --image nvcr.io/x/y:1 "
        "--workspace ws1:/workspace:RW --result /results --commandline 'cd /workspace/code && export K='\"'\"'v w'\"'\"' "
        "&& python -m poptrain.train '\"'\"'lr=a b'\"'\"' experiment=01_cp_lr_a-b train_dir=/td/sweep/cp' --format_type json"
    )
    argv = rendered[1].argv
    assert argv[:3] == ["ngc", "batch", "run"]
    commandline = argv[argv.index("--commandline") + 1]
    assert (
        commandline
        == "cd /workspace/code && export K='v w' && python -m poptrain.train 'lr=a b' experiment=01_cp_lr_a-b train_dir=/td/sweep/cp"
    )


def test_ngc_statuses_and_failed_submission(tmp_path, fake_ngc) -> None:
    assert map_ngc_status("FINISHED_SUCCESS") is JobState.COMPLETED
    assert map_ngc_status("KILLED_BY_USER") is JobState.CANCELLED
    assert map_ngc_status("FAILED_RUN_LIMIT_EXCEEDED") is JobState.TIMEOUT
    backend = NgcBackend(template="ngc batch run --name {{job_name}} --fail --commandline {{commandline}}")
    backend.submit(backend.render(_planned()))
    statuses = backend.poll()
    assert [s.state for s in statuses] == [JobState.FAILED, JobState.FAILED]
    assert "fake submission failure" in statuses[0].reason
    calls = [json.loads(line) for line in (fake_ngc / "calls.jsonl").read_text().splitlines()]
    assert calls[0][:5] == ["batch", "run", "--name", "sweep-00_cp_lr_0.001", "--fail"]


def test_ngc_argv_is_the_printed_text_split_and_quoted_placeholders_are_refused() -> None:
    for r in NgcBackend(workspace="w s").render(_planned(env_vars={"Q": "it's $x"})):
        assert r.argv == shlex.split(r.text)
    with pytest.raises(ConfigError, match="inside quotes"):
        NgcBackend(template="ngc batch run --commandline 'bash -c {{cmd}}'")
    with pytest.raises(ConfigError, match="cannot be split"):
        NgcBackend(template="ngc batch run --name {{job_name}} 'unclosed")
