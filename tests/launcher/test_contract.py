"""One contract, every registered backend: render -> submit -> observe -> cancel.

The suite runs once per ``--backend`` name of the registry, each built by its factory in contract_backends.py:
processes runs local children; slurm runs on the real local cluster (skipped when it is not up: start it
with `bash scripts/slurm-local.sh start`); ray runs Ray tasks on the real local head (skipped when it is not
up: `bash scripts/ray-local.sh start`; CI requires it); ngc runs through a recording fake ``ngc`` on PATH that executes
the rendered --commandline with bash, so quoting is exercised end to end. Every child runs on this machine, so
the tests can see its process.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from contract_backends import make_backend
from launcher_helpers import child_run

from poptrain.errors import LaunchError
from poptrain.launcher.backends import Backend, JobState, backend_names

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


@pytest.fixture(params=backend_names())
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(autouse=True)
def _no_child_left(tmp_path: Path):
    """After each test, stop any child still running (a failing cancel test must not leave a sleep 600 behind)."""
    yield
    for record in tmp_path.rglob("argv.json"):
        pid = json.loads(record.read_text())["pid"]
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _record(planned) -> dict:
    with open(os.path.join(planned.output_dir, "argv.json")) as f:
        return json.load(f)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it has stopped, only its exit status is left)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until_gone(pid: int, timeout_s: float = 60) -> None:
    """Until ``pid`` has stopped; the cancel reached the child itself, not only the backend's bookkeeping."""
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        assert time.monotonic() < deadline, (
            f"child {pid} still runs {timeout_s} s after its job was cancelled"
        )
        time.sleep(0.1)


def _wait_until_done(backend: Backend, name: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not {s.name: s for s in backend.poll()}[name].state.terminal:
        assert time.monotonic() < deadline, f"{name} not finished after {timeout_s} s: {backend.poll()}"
        time.sleep(0.1)


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
        pid = _record(planned[0])["pid"]
        assert _pid_alive(pid)
        backend.cancel()
        statuses = backend.wait(timeout_s=120)
        assert [s.state for s in statuses] == [JobState.CANCELLED], statuses
        _wait_until_gone(pid)  # the child (sleep 600) was stopped, not only reported cancelled
        log = Path(planned[0].output_dir, "log.txt")
        if log.exists():  # ngc jobs log on the (fake) cluster, not here
            assert f"child {planned[0].name} started" in log.read_text()
            assert f"child {planned[0].name} done" not in log.read_text()

    def test_submit_hands_out_a_typed_handle_per_job(self, backend: Backend, tmp_path: Path) -> None:
        planned = list(child_run("handle", [{"i": 1}, {"i": 2}]).plan(str(tmp_path / "train")))
        backend.submit(backend.render(planned))
        jobs = backend.jobs()
        assert [j.name for j in jobs] == [p.name for p in planned]
        assert all(
            j.backend is backend and j.rendered.planned == p for j, p in zip(jobs, planned, strict=True)
        )
        statuses = backend.wait(timeout_s=120)
        assert [j.state for j in jobs] == [JobState.COMPLETED] * 2  # the handles follow the polls
        assert all(j.id for j in jobs) and [j.id for j in jobs] == [s.job_id for s in statuses]
        assert [j.snapshot() for j in jobs] == statuses

    def test_cancelling_one_job_leaves_the_others_running(self, backend: Backend, tmp_path: Path) -> None:
        run = child_run("one", [{"sleep": 600, "i": 1}, {"sleep": 600, "i": 2}])
        planned = list(run.plan(str(tmp_path / "train")))
        backend.submit(backend.render(planned))
        _wait_until_running(backend, planned)
        first, second = backend.jobs()
        try:
            first.cancel()
        except LaunchError as exc:
            backend.cancel()
            pytest.skip(f"--backend {backend.name} stops its jobs only all together: {exc}")
        _wait_until_done(backend, first.name)
        assert first.state is JobState.CANCELLED
        _wait_until_gone(_record(planned[0])["pid"])
        assert {s.name: s.state for s in backend.poll()}[second.name] is JobState.RUNNING
        assert _pid_alive(_record(planned[1])["pid"])
        second.cancel()
        assert [s.state for s in backend.wait(timeout_s=120)] == [JobState.CANCELLED] * 2
        _wait_until_gone(_record(planned[1])["pid"])
