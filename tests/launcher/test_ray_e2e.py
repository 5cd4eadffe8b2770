"""End to end on the local Ray head: the README's PBT population (``poptrain.experiments.cartpole_pbt``) run by
``poptrain-launch --backend ray``, one member SIGKILLed mid-run.

The run module is cartpole_pbt's own RUN_DESCRIPTION with one argv element changed, ``max_iterations=200`` ->
60 epochs (its PBT intervals are 10-20 epochs, so exploits still happen), to keep CI short. Four members on the
two-CPU head ask 0.5 CPU each so that all of them run at once, as a population must.

It shows: every member completes; the killed member was started again by the launcher (--max_restarts 1) and
resumed from its own newest checkpoint (a ``resume`` lineage event); exploits are recorded; ``best/`` is
exported; ``poptrain status`` reads the Ray-run population.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from launcher_helpers import POPTRAIN_SRC, ray_runtime_env

from poptrain.pbt.workspace import Workspace

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

EPOCHS = 60
RUN_MODULE = f'''\
"""cartpole_pbt with max_iterations={EPOCHS} (tests/launcher/test_ray_e2e.py)."""
from poptrain.experiments import cartpole_pbt
from poptrain.launcher.run_description import Experiment, RunDescription

_base = cartpole_pbt.RUN_DESCRIPTION
_exp = _base.experiments[0]
assert _exp.argv.count("max_iterations=200") == 1, _exp.argv
_argv = [f"max_iterations={EPOCHS}" if a == "max_iterations=200" else a for a in _exp.argv]
RUN_DESCRIPTION = RunDescription(
    _base.run_name,
    experiments=[Experiment(_exp.base_name, _argv, _exp.params, env_vars=_exp.env_vars)],
    experiment_arg_name=_base.experiment_arg_name,
    experiment_dir_arg_name=_base.experiment_dir_arg_name,
    param_prefix=_base.param_prefix,
    customize_experiment_name=_base.customize_experiment_name,
)
'''


@pytest.fixture(scope="module")
def ray_population(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from launcher_helpers import ray_address_or_reason

    address, reason = ray_address_or_reason()
    if address is None:
        if os.environ.get("POPTRAIN_REQUIRE_RAY") == "1":
            pytest.fail(f"POPTRAIN_REQUIRE_RAY=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("ray_e2e")
    (root / "ray_cartpole_short.py").write_text(RUN_MODULE)
    runtime_env = root / "runtime_env.yaml"
    runtime_env.write_text(json.dumps(ray_runtime_env()))
    train_dir = root / "td"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), POPTRAIN_SRC]))
    env.pop("POPTRAIN_PBT_RESTART", None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "poptrain.launcher.run", "--run", "ray_cartpole_short", "--backend", "ray", "--ray_wait",
         "--ray_address", address, "--ray_cpus_per_job", "0.5", "--ray_runtime_env", str(runtime_env),
         "--max_restarts", "1", "--pause_between", "0", "--train_dir", str(train_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    run_dir = train_dir / "cartpole_pbt" / "cartpole"
    ws = Workspace(run_dir / "pbt_workspace")
    killed: dict = {}
    try:
        # SIGKILL member 1's process once it has two checkpoints of its own (a resume point exists).
        deadline = time.monotonic() + 400
        while len(ws.member_history(1)) < 2:
            assert launcher.poll() is None, launcher.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "member 1 wrote no second checkpoint"
            time.sleep(0.2)
        attempt = json.loads((run_dir / "01_cartpole" / "ray_attempt.json").read_text())
        killed = {"pid": attempt["pid"], "at": ws.latest(1)}
        os.kill(attempt["pid"], signal.SIGKILL)
        out, _ = launcher.communicate(timeout=500)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)  # the launcher cancels every member
            launcher.communicate(timeout=60)
    return {"out": out, "code": launcher.returncode, "run_dir": run_dir, "ws": ws, "killed": killed}


def test_every_member_completes_and_the_killed_one_was_restarted(ray_population: dict) -> None:
    out = ray_population["out"]
    assert ray_population["code"] == 0, out[-4000:]
    assert "summary: 4 completed" in out
    # the launcher's display: the member's restart, with the reason
    assert "01_cartpole" in out and "restarting after exit code -9" in out, out[-4000:]
    log = (ray_population["run_dir"] / "01_cartpole" / "log.txt").read_text()
    assert "[launcher] exit code -9; restart 1/1" in log
    assert "attempt 2/2 on ray node 127.0.0.1" in log


def test_the_killed_member_resumed_from_its_own_checkpoint(ray_population: dict) -> None:
    ws: Workspace = ray_population["ws"]
    killed_at = ray_population["killed"]["at"]
    resumes = [e for e in ws.read_lineage() if e.event == "resume"]
    assert [e.member for e in resumes] == [1], resumes
    assert resumes[0].iteration >= killed_at.iteration
    final = ws.latest(1)
    assert final is not None and final.finished and final.iteration > killed_at.iteration
    assert final.frames == EPOCHS * 512 * 16


def test_exploits_are_recorded_and_best_is_exported(ray_population: dict) -> None:
    ws: Workspace = ray_population["ws"]
    exploits = [e for e in ws.read_lineage() if e.event == "exploit"]
    assert exploits, ws.read_lineage()
    assert all(e.source != e.member for e in exploits)
    best = ray_population["run_dir"] / "pbt_workspace" / "best"
    assert (best / "checkpoint.pth").is_file() and (best / "config.yaml").is_file()


def test_poptrain_status_reads_the_ray_run_population(ray_population: dict) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "status", str(ray_population["run_dir"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=POPTRAIN_SRC),
    )
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert sorted(m["member"] for m in status["members"]) == [0, 1, 2, 3]
    assert all(m["state"] == "finished" for m in status["members"]), status
    assert status["best"] in (0, 1, 2, 3)
