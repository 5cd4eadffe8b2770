"""The ray backend: option checks, the lazy import, and faults on the real local Ray head.

The head is the one of ``bash scripts/ray-local.sh start`` (tests skip without it, except in CI, which sets
POPTRAIN_REQUIRE_RAY=1). The render -> submit -> observe -> cancel contract runs in test_contract.py; here:
a dead worker (what a dead node does to its tasks) restarts the member and takes its child with it; Ctrl-C /
SIGTERM of the CLI leaves no process behind; a train_dir a node does not share stops the population.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launcher_helpers import POPTRAIN_SRC, child_run, ray_runtime_env

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import JobState
from poptrain.launcher.backends.ray import (
    PROBE_NAME,
    RayBackend,
    check_address,
    probe_error,
    read_runtime_env,
)
from poptrain.launcher.run_description import Experiment, RunDescription

SRC = Path(POPTRAIN_SRC) / "poptrain"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ---- options (no cluster) ---------------------------------------------------------------------------
def test_addresses_are_checked() -> None:
    for good in ("auto", "local", "127.0.0.1:6379", "head-0.ray.svc:10001", "[::1]:6379"):
        assert check_address(good) == good
    for bad in ("", "ray://x", "host", "host:0", "host:70000", "a b:1", "127.0.0.1:6379;rm"):
        with pytest.raises(ConfigError, match=r"--ray_address .*valid: auto .*local .*HOST:PORT"):
            check_address(bad)


def test_bad_resources_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        RayBackend(address="x", gpus_per_job=-1, cpus_per_job=0, max_restarts=-2, pause_between=-1)
    text = str(err.value)
    for flag in ("--ray_address", "--ray_gpus_per_job -1", "--ray_cpus_per_job 0", "--max_restarts -2"):
        assert flag in text
    RayBackend(cpus_per_job=0, gpus_per_job=0.5)  # a GPU-only task needs no CPU


def test_runtime_env_files_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "env.yaml"
    good.write_text("env_vars:\n  A: '1'\npip: [rich]\n")
    assert read_runtime_env(str(good)) == {"env_vars": {"A": "1"}, "pip": ["rich"]}
    as_json = tmp_path / "env.json"
    as_json.write_text('{"env_vars": {"B": "x y"}}')
    assert read_runtime_env(str(as_json)) == {"env_vars": {"B": "x y"}}
    for text, match in (
        ("[1, 2]", "valid: a mapping"),
        ("env_vars: {A: 1}", "env_vars must map names to strings"),
        ("{unclosed", "not valid JSON/YAML"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            read_runtime_env(str(bad))
    with pytest.raises(ConfigError, match="cannot be read"):
        read_runtime_env(str(tmp_path / "missing.yaml"))


def test_probe_error_names_the_node_and_the_path(tmp_path: Path) -> None:
    probe = tmp_path / PROBE_NAME
    probe.write_text("abc\n")
    assert probe_error(str(probe), "abc", "10.0.0.7") == ""
    message = probe_error(str(probe), "xyz", "10.0.0.7")
    assert "node 10.0.0.7" in message and str(probe) in message and "shared filesystem" in message
    assert "No such file" in probe_error(str(tmp_path / "elsewhere" / PROBE_NAME), "abc", "n")


def test_only_the_ray_backend_imports_ray(tmp_path: Path) -> None:
    importers = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"^\s*(import ray\b|from ray\b)", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["launcher/backends/ray.py"]
    # ... and only when it connects: the CLI, every backend and a --ray_print_only run leave it unimported.
    code = (
        "import sys, poptrain.cli, poptrain.launcher.run as run\n"
        "from poptrain.launcher.backends import backend_classes\n"
        "backend_classes()\n"
        f"assert run.main(['--run', 'poptrain.experiments.cartpole_pbt', '--backend', 'ray', "
        f"'--ray_print_only', '--train_dir', {str(tmp_path)!r}]) == 0\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env_with_src()
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "# ray task on auto (num_cpus=1 num_gpus=0)" in out.stdout
    assert "4 experiment(s) of run cartpole_pbt; nothing started (ray)" in out.stdout
    assert not (tmp_path / "cartpole_pbt").exists()


def _env_with_src() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([POPTRAIN_SRC, os.environ.get("PYTHONPATH", "")]))


# ---- faults on the real head ------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(180)
def test_a_dead_worker_restarts_the_member_and_its_child_dies_with_it(
    ray_cluster: str, tmp_path: Path
) -> None:
    backend = RayBackend(
        address=ray_cluster,
        runtime_env=ray_runtime_env(),
        max_restarts=1,
        poll_interval_s=0.1,
        kill_grace_s=3,
    )
    planned = list(child_run("worker", [{"sleep": 120}]).plan(str(tmp_path / "train")))
    backend.submit(backend.render(planned))
    name = planned[0].name
    record_path = Path(planned[0].output_dir) / "argv.json"
    _wait_for(
        lambda: backend.poll()[0].state is JobState.RUNNING and _read_json(record_path),
        60,
        "the member to run",
    )
    first = backend.attempt_record(name)
    assert first is not None and first["attempt"] == 1
    second = None
    try:
        # What a node failure does to the task: its worker is gone (SIGKILL, no clean-up).
        os.kill(first["worker_pid"], signal.SIGKILL)
        _wait_for(
            lambda: (s := backend.poll()[0]).restarts == 1 and s.state is JobState.RUNNING,
            90,
            "the member to run again",
        )
        second = backend.attempt_record(name)
        assert second is not None and second["worker_pid"] != first["worker_pid"]
        assert backend.poll()[0].restarts == 1
        # PR_SET_PDEATHSIG: the first child (120 s to go) did not outlive its worker: the member never runs twice
        _wait_for(lambda: not _pid_alive(first["pid"]), 60, "the first child to die with its worker")
        _wait_for(
            lambda: _read_json(record_path).get("env", {}).get("POPTRAIN_LAUNCH_ATTEMPT") == "2",
            30,
            "the second child's record",
        )
        assert _read_json(record_path)["pid"] == second["pid"]
        log = (Path(planned[0].output_dir) / "log.txt").read_text()
        assert "[launcher] ActorDiedError" in log and "restart 1/1" in log, log
        assert log.count("[launcher] attempt ") == 2 and "attempt 2/2 on ray node" in log
        backend.cancel()
        assert [s.state for s in backend.poll()] == [JobState.CANCELLED]
        _wait_for(lambda: not _pid_alive(second["pid"]), 60, "the second child to be stopped by cancel")
    finally:
        backend.cancel()  # idempotent; its slot holds a head CPU until then
        _kill(first["pid"])
        if second is not None:
            _kill(second["pid"])


@pytest.mark.ray
@pytest.mark.timeout(180)
# SIGTERM only: SIGINT takes the same handler in run.py (both are tested with the processes backend), and
# every launcher start costs CI a new set of Ray workers (~5-10 s).
@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_a_signal_to_the_cli_cancels_every_member_and_leaves_no_process(
    ray_cluster: str, tmp_path: Path, sig: signal.Signals
) -> None:
    module = tmp_path / "ray_cli_run.py"
    module.write_text(
        "import sys\n"
        "from poptrain.launcher.run_description import Experiment, ParamList, RunDescription\n"
        f"RUN_DESCRIPTION = RunDescription('cli', [Experiment('c', [sys.executable, {str(Path(__file__).parent / 'child.py')!r}],\n"
        "    ParamList([{'sleep': 120, 'spawn': 1, 'i': i} for i in range(3)]).generate_params(randomize=False))])\n"
    )
    runtime_env = tmp_path / "runtime_env.json"
    runtime_env.write_text(json.dumps(ray_runtime_env()))
    env = _env_with_src()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    launcher = subprocess.Popen(
        [sys.executable, "-m", "poptrain.launcher.run", "--run", "ray_cli_run", "--backend", "ray", "--ray_wait",
         "--ray_address", ray_cluster, "--ray_cpus_per_job", "0.5", "--ray_runtime_env", str(runtime_env),
         "--train_dir", str(tmp_path / "td"), "--pause_between", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out_dirs = [tmp_path / "td" / "cli" / "c" / f"0{i}_c_sle_120_spa_1_i_{i}" for i in range(3)]
    spawned: list[int] = []
    try:
        _wait_for(
            lambda: (
                launcher.poll() is None
                and all(
                    (d / "grandchild.pid").exists() and (d / "grandchild.pid").read_text() for d in out_dirs
                )
            ),
            90,
            "three members with a grandchild each",
        )
        for d in out_dirs:
            spawned += [
                int((d / "grandchild.pid").read_text()),
                json.loads((d / "argv.json").read_text())["pid"],
            ]
        launcher.send_signal(sig)
        out, _ = launcher.communicate(timeout=60)
        assert launcher.returncode == 128 + sig, out
        assert "summary: 3 cancelled" in out, out
        # the launcher's display names each member with its Ray task id
        # (a member may be cancelled before the display saw it running: all three start at once)
        shown = r"\[launcher\] 00_c_sle_120_spa_1_i_0 \[[0-9a-f]{48}\]: (running|cancelled)"
        assert re.search(shown, out), out
        # children sleep 120 s: one still alive after 60 s is left behind, not slow to die
        _wait_for(lambda: not [pid for pid in spawned if _pid_alive(pid)], 60, "no process left behind")
        for d in out_dirs:
            assert "[launcher] cancelled; process group" in (d / "log.txt").read_text()
    finally:  # never leave processes behind, even when the test fails
        launcher.kill()
        launcher.wait()
        for pid in spawned:
            _kill(pid)


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_a_train_dir_a_node_does_not_share_stops_the_population(ray_cluster: str, tmp_path: Path) -> None:
    child = [sys.executable, str(Path(__file__).parent / "child.py")]
    run = RunDescription(
        "shared", [Experiment("a", child, [{"sleep": 120}]), Experiment("b", child, [{"sleep": 120}])]
    )
    planned = list(run.plan(str(tmp_path / "train")))
    assert planned[0].experiment_dir != planned[1].experiment_dir
    # pause_between holds the second member back a second after the first (which waits for the slots to
    # start), so its folder can change in between as a node without the shared filesystem would see it: a
    # folder of the same name that is not the launcher's.
    backend = RayBackend(
        address=ray_cluster,
        runtime_env=ray_runtime_env(),
        pause_between=1.0,
        poll_interval_s=0.1,
        kill_grace_s=3,
    )
    backend.submit(backend.render(planned))
    probe = Path(planned[1].experiment_dir) / PROBE_NAME
    probe.write_text("another filesystem\n")
    assert backend.poll()[1].job_id == "", "the second member was handed to a slot before its probe changed"
    first_pid = None
    try:
        with pytest.raises(LaunchError) as err:
            backend.wait(timeout_s=120)
        message = str(err.value)
        assert f"train_dir is not shared with node 127.0.0.1: {probe}" in message
        assert "'another filesystem'" in message and "docs/ray.md" in message
        statuses = {s.name: s for s in backend.poll()}
        assert statuses[planned[1].name].state is JobState.FAILED
        assert statuses[planned[0].name].state is JobState.CANCELLED  # the population stops as a whole
        # the refused member started nothing
        assert not (Path(planned[1].output_dir) / "argv.json").exists()
        record = Path(planned[0].output_dir) / "argv.json"
        if record.exists():
            first_pid = json.loads(record.read_text())["pid"]
            _wait_for(lambda: not _pid_alive(first_pid), 60, "the first member's child to be stopped")
    finally:
        backend.cancel()  # its slots hold the head's CPUs until then
        if first_pid is not None:
            _kill(first_pid)


def test_an_unreachable_head_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from poptrain.launcher.run import main

    # a port nothing listens on: connect fails at once instead of ray.init retrying for minutes
    code = main(
        ["--run", "poptrain.experiments.cartpole_pbt", "--backend", "ray", "--ray_wait",
         "--ray_address", "127.0.0.1:1", "--train_dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 1
    assert "--ray_address 127.0.0.1:1: nothing answers at 127.0.0.1:1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--ray_address local ends with the launcher: add --ray_wait"):
        RayBackend(address="local", wait=False, launcher_argv=["x"])


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_without_ray_wait_the_launcher_submits_itself_as_a_ray_job(ray_cluster: str, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus as RayJobStatus
    from ray.job_submission import JobSubmissionClient

    module = tmp_path / "ray_job_run.py"
    module.write_text(
        "import sys\n"
        "from poptrain.launcher.run_description import Experiment, RunDescription\n"
        f"RUN_DESCRIPTION = RunDescription('job', [Experiment('c', [sys.executable, {str(Path(__file__).parent / 'child.py')!r}],\n"
        "    [{'msg': 'a b', 'i': 0}, {'msg': 'c', 'i': 1}])])\n"
    )
    # the job's driver (on the head) imports the run module and this poptrain
    runtime_env = tmp_path / "runtime_env.yaml"
    runtime_env.write_text(f"env_vars:\n  PYTHONPATH: '{POPTRAIN_SRC}{os.pathsep}{tmp_path}'\n")
    env = _env_with_src()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    out = subprocess.run(
        [sys.executable, "-m", "poptrain.launcher.run", "--run", "ray_job_run", "--backend", "ray",
         "--ray_address", ray_cluster, "--ray_cpus_per_job", "0.5", "--ray_runtime_env", str(runtime_env),
         "--train_dir", str(tmp_path / "td"), "--pause_between", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job_ids = set(re.findall(r"\[launcher\] 0\d_c_\S+: job (raysubmit_\w+)", out.stdout))
    assert len(job_ids) == 1, out.stdout  # one Ray job: the launcher, driving both members
    job_id = job_ids.pop()
    client = JobSubmissionClient("http://127.0.0.1:" + os.environ.get("POPTRAIN_RAY_DASHBOARD_PORT", "8265"))
    try:
        _wait_for(lambda: client.get_job_status(job_id).is_terminal(), 180, f"Ray job {job_id}")
        logs = client.get_job_logs(job_id)
        assert client.get_job_status(job_id) == RayJobStatus.SUCCEEDED, logs[-3000:]
        assert "summary: 2 completed" in logs
        for name, msg in (("00_c_msg_a-b_i_0", "--msg=a b"), ("01_c_msg_c_i_1", "--msg=c")):
            record = _read_json(tmp_path / "td" / "job" / "c" / name / "argv.json")
            assert record["argv"][0] == msg and record["cwd"] == os.getcwd(), record
    finally:
        if not client.get_job_status(job_id).is_terminal():
            client.stop_job(job_id)


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_each_member_sees_the_gpus_ray_assigned_it(ray_cluster: str, tmp_path: Path) -> None:
    # scripts/ray-local.sh advertises 2 logical GPUs (POPTRAIN_RAY_GPUS): Ray assigns them as real ones
    backend = RayBackend(
        address=ray_cluster,
        runtime_env=ray_runtime_env(),
        gpus_per_job=1,
        cpus_per_job=0.5,
        poll_interval_s=0.1,
    )
    backend.connect()  # before this test imports ray: connect() sets how ray reads a loopback address
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < 2:
        pytest.skip(f"the Ray head has {gpus} GPU(s); start it with POPTRAIN_RAY_GPUS=2")
    # both run until cancelled: Ray's workers can start seconds apart under load, and two members that do not
    # overlap may both get GPU 0; two that run at once must hold different GPUs
    planned = list(child_run("gpu", [{"sleep": 120, "i": i} for i in range(2)]).plan(str(tmp_path / "train")))
    backend.submit(backend.render(planned))
    records = [Path(p.output_dir) / "argv.json" for p in planned]
    try:
        _wait_for(
            lambda: (  # poll() first: it hands the members to the slots once they are up
                [s.state for s in backend.poll()] == [JobState.RUNNING] * 2
                and all(_read_json(r) for r in records)
            ),
            120,
            "both members to run at once",
        )
    finally:
        backend.cancel()
    seen = [_read_json(r)["env"]["CUDA_VISIBLE_DEVICES"] for r in records]
    # running at the same time, one GPU each: two different ones, each named in the member's log header
    assert sorted(seen) == ["0", "1"], seen
    for p, gpu in zip(planned, seen, strict=True):
        assert f"CUDA_VISIBLE_DEVICES={gpu}:" in (Path(p.output_dir) / "log.txt").read_text()


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_members_run_one_after_another_on_long_lived_slots(ray_cluster: str, tmp_path: Path) -> None:
    # 1 CPU per member on the 2-CPU head: 2 slots for 5 members, so each slot runs several of them; one fails
    # (exit 5) and must not take its slot with it
    backend = RayBackend(
        address=ray_cluster, runtime_env=ray_runtime_env(), cpus_per_job=1, poll_interval_s=0.1
    )
    combos = [{"i": i, "exit_code": 5 if i == 2 else 0} for i in range(5)]
    planned = list(child_run("slots", combos).plan(str(tmp_path / "train")))
    try:
        backend.submit(backend.render(planned))
        statuses = backend.wait(timeout_s=180)
    finally:
        backend.cancel()
    done, failed = JobState.COMPLETED, JobState.FAILED
    assert [s.state for s in statuses] == [done, done, failed, done, done], statuses
    records = [_read_json(Path(p.output_dir) / "ray_attempt.json") for p in planned]
    workers = {r["worker_pid"] for r in records}
    # every member ran in one of the two slot actors, none in a process of its own
    assert len(workers) == 2, records
    for p, r in zip(planned, records, strict=True):
        assert _read_json(Path(p.output_dir) / "argv.json")["pid"] == r["pid"]
    # nothing left to run: the slots were stopped and gave the head its CPUs back
    _wait_for(lambda: not [pid for pid in workers if _pid_alive(pid)], 60, "the slot actors to stop")


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_a_slot_that_cannot_start_fails_the_members_with_its_error(ray_cluster: str, tmp_path: Path) -> None:
    # a node whose Python imports a broken poptrain: its slot actor cannot be created there
    broken = tmp_path / "broken_node" / "poptrain"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('poptrain is broken on this node')\n")
    backend = RayBackend(
        address=ray_cluster,
        runtime_env={"env_vars": {"PYTHONPATH": str(broken.parent)}},
        cpus_per_job=0.5,
        poll_interval_s=0.1,
    )
    planned = list(child_run("broken", [{"i": i} for i in range(2)]).plan(str(tmp_path / "train")))
    try:
        backend.submit(backend.render(planned))
        statuses = backend.wait(timeout_s=180)
    finally:
        backend.cancel()
    assert [s.state for s in statuses] == [JobState.FAILED] * 2, statuses
    for s in statuses:
        assert s.reason.startswith("the Ray slot actor could not start on its node"), s.reason
        assert "poptrain is broken on this node" in s.reason, s.reason
    assert not any((Path(p.output_dir) / "argv.json").exists() for p in planned)


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_a_member_queued_behind_a_long_one_moves_to_a_slot_that_went_idle(
    ray_cluster: str, tmp_path: Path
) -> None:
    # 2 slots (1 CPU each of the 2-CPU head), 4 members: each slot gets one to run and one queued behind it.
    # Member 0 runs for 600 s; member 2, queued behind it, must not wait for it once the other slot is idle.
    backend = RayBackend(
        address=ray_cluster,
        runtime_env=ray_runtime_env(),
        cpus_per_job=1,
        poll_interval_s=0.1,
        kill_grace_s=3,
    )
    combos = [{"i": 0, "sleep": 600}] + [{"i": i, "sleep": 0.2} for i in (1, 2, 3)]
    planned = list(child_run("behind", combos).plan(str(tmp_path / "train")))
    try:
        backend.submit(backend.render(planned))
        _wait_for(
            lambda: [s.state for s in backend.poll()] == [JobState.RUNNING] + [JobState.COMPLETED] * 3,
            120,
            "members 1-3 to complete while member 0 runs",
        )
        records = [_read_json(Path(p.output_dir) / "ray_attempt.json") for p in planned]
        # member 2 ran in the other slot, once (the call taken back counted neither a restart nor an attempt)
        assert records[2]["worker_pid"] != records[0]["worker_pid"], records
        assert records[2]["attempt"] == 1 and backend.poll()[2].restarts == 0
        assert (Path(planned[2].output_dir) / "log.txt").read_text().count("[launcher] attempt 1/1") == 1
    finally:
        backend.cancel()
    assert backend.poll()[0].state is JobState.CANCELLED
