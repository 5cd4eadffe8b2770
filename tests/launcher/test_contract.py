"""One contract, every backend: render -> submit -> observe -> cancel.

processes runs local children; slurm runs on the real local cluster (skipped when it is not up: start it
with `bash scripts/slurm-local.sh start`); ray runs Ray tasks on the real local head (skipped when it is not
up: `bash scripts/ray-local.sh start`; CI requires it); ngc runs through a recording fake ``ngc`` on PATH that executes
the rendered --commandline with bash, so quoting is exercised end to end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from launcher_helpers import child_run, ray_runtime_env

from poptrain.launcher.backends import Backend, JobState
from poptrain.launcher.backends.ngc import NgcBackend
from poptrain.launcher.backends.processes import ProcessesBackend
from poptrain.launcher.backends.ray import RayBackend
from poptrain.launcher.backends.slurm import SlurmBackend

HOSTILE = {
    "msg": "hello world",
    "eq": "a=b=c",
    "quotes": 'it\'s "quoted"',
    "dollar": "$HOME ${PATH} $(echo pwned) `id`",
    "shell": "x; echo pwned && true | cat > /dev/null",
    "glob": "*.py",
    "back": "back\\slash",
    "newline": "two\nlines\ttab",
    "unicode": "ünïcødé",
    "empty": "",
    "neg": -3,
    "negf": -0.5,
    "exp": 1e-5,
    "big": 3e20,
    "flag": True,
    "off": False,
    "lst": [1, 2.5, "x"],
    "none": None,
}
HOSTILE_ARGV = [
    "--msg=hello world",
    "--eq=a=b=c",
    '--quotes=it\'s "quoted"',
    "--dollar=$HOME ${PATH} $(echo pwned) `id`",
    "--shell=x; echo pwned && true | cat > /dev/null",
    "--glob=*.py",
    "--back=back\\slash",
    "--newline=two\nlines\ttab",
    "--unicode=ünïcødé",
    "--empty=",
    "--neg=-3",
    "--negf=-0.5",
    "--exp=1e-05",
    "--big=3e+20",
    "--flag=True",
    "--off=False",
    "--lst=[1,2.5,x]",
    "--none=null",
]


@pytest.fixture(params=["processes", "slurm", "ngc", "ray"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "processes":
        return ProcessesBackend(max_parallel=2, pause_between=0, poll_interval_s=0.05, kill_grace_s=3)
    if request.param == "ray":
        address = request.getfixturevalue("ray_cluster")
        return RayBackend(address=address, runtime_env=ray_runtime_env(), poll_interval_s=0.1, kill_grace_s=3)
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
        return SlurmBackend(
            workdir=str(tmp_path / "slurm_workdir"), gpus_per_job=0, cpus_per_gpu=1, poll_interval_s=0.3
        )
    request.getfixturevalue("fake_ngc")
    return NgcBackend(workspace="ws", workdir=os.getcwd(), poll_interval_s=0.1)


def _record(planned) -> dict:
    with open(os.path.join(planned.output_dir, "argv.json")) as f:
        return json.load(f)


def _wait_until_running(backend: Backend, planned, timeout_s: float = 120) -> None:
    """Until the backend says RUNNING and the child has written its record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [s.state for s in backend.poll()]
        if states == [JobState.RUNNING] * len(planned) and all(
            os.path.exists(os.path.join(p.output_dir, "argv.json")) for p in planned
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs not running after {timeout_s} s: {backend.poll()}")


class TestBackendContract:
    def test_render_is_a_pure_value(self, backend: Backend, tmp_path: Path) -> None:
        planned = list(child_run("pure", [{"a": 1}, {"a": 2}]).plan(str(tmp_path / "train"), makedirs=False))
        first, second = backend.render(planned), backend.render(planned)
        assert [r.text for r in first] == [r.text for r in second]
        assert [r.name for r in first] == ["00_pure_a_1", "01_pure_a_2"]
        for r, p in zip(first, planned, strict=True):
            assert p.name in r.text and "--a=" in r.text
        assert not (tmp_path / "train").exists(), "render must not write anything"
        assert backend.poll() == [], "render must not submit anything"

    def test_every_experiment_runs_with_the_exact_argv_and_env(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        run = child_run("argv", [HOSTILE, {"n": 1}, {"n": 2}], env_vars={"POPTRAIN_TEST_ENV": "v a$l'ue"})
        planned = list(run.plan(str(tmp_path / "train")))
        backend.submit(backend.render(planned))
        statuses = backend.wait(timeout_s=90)
        assert [s.state for s in statuses] == [JobState.COMPLETED] * 3, statuses
        assert all(s.exit_code in (0, None) for s in statuses)
        record = _record(planned[0])
        assert record["argv"][: len(HOSTILE_ARGV)] == HOSTILE_ARGV
        assert record["argv"] == planned[0].argv[2:]
        assert record["env"]["POPTRAIN_TEST_ENV"] == "v a$l'ue"
        for p in planned[1:]:
            assert _record(p)["argv"] == p.argv[2:]

    def test_a_failing_experiment_is_reported_with_its_exit_code(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        planned = list(child_run("fail", [{"exit_code": 0}, {"exit_code": 5}]).plan(str(tmp_path / "train")))
        backend.submit(backend.render(planned))
        by_name = {s.name: s for s in backend.wait(timeout_s=90)}
        assert by_name[planned[0].name].state is JobState.COMPLETED
        assert by_name[planned[1].name].state is JobState.FAILED
        assert by_name[planned[1].name].exit_code == 5

    def test_cancel_stops_running_jobs(self, backend: Backend, tmp_path: Path) -> None:
        planned = list(child_run("cancel", [{"sleep": 600}]).plan(str(tmp_path / "train")))
        backend.submit(backend.render(planned))
        _wait_until_running(backend, planned)
        backend.cancel()
        statuses = backend.wait(timeout_s=120)  # the child sleeps 600 s: CANCELLED means cancel stopped it
        assert [s.state for s in statuses] == [JobState.CANCELLED], statuses
