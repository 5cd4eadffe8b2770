"""Port test (issue 9, point 2): an IsaacGymEnvs-style experiment module, changed only in its import line,
renders the argv IGE's launcher would and runs on the processes backend with outputs under --train_dir."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from poptrain.errors import ConfigError
from poptrain.launcher.backends.processes import ProcessesBackend
from poptrain.launcher.run import load_run_description, main
from poptrain.launcher.run_description import ParamGrid, format_value
from poptrain.pbt.workspace import Workspace

HERE = Path(__file__).parent
BASE = (
    "python -m poptrain.train task=Cartpole headless=True max_iterations=12 num_envs=64 "
    "train.params.config.save_frequency=0 pbt=pbt_default pbt.num_policies=2 pbt.workspace=workspace_cartpole_port "
    "pbt.initial_delay=4096 pbt.interval_steps=2048 pbt.start_after=2048 pbt/mutation=lr_only"
)


def reference_argv(train_dir: str, idx: int, policy: int, seed: int) -> list[str]:
    """IGE: '<cmd> <param>=<value>... experiment=<idx:02d>_<base> hydra.run.dir=<train_dir>/<run>/<base>_<suffix>'
    split by the shell; the one difference: IGE's folder ends in '_' when no --experiment_suffix is given
    (``f"{base_name}_{suffix}"``), ours is the bare base name (docs/porting.md)."""
    return [
        *shlex.split(BASE),
        f"pbt.policy_idx={policy}", f"seed={seed}", "train.params.config.learning_rate=0.0003",
        "train.params.config.gamma=0.99", f"experiment={idx:02d}_cartpole_port",
        f"hydra.run.dir={train_dir}/cartpole_port/cartpole_port",
    ]  # fmt: skip


@pytest.fixture
def port_module(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE / "port"))
    return "ige_style_cartpole_pbt"


def test_the_ported_module_renders_the_reference_argv(port_module, tmp_path) -> None:
    planned = list(load_run_description(port_module).plan(str(tmp_path), makedirs=False))
    assert [p.argv for p in planned] == [
        reference_argv(str(tmp_path), 0, 0, 11),
        reference_argv(str(tmp_path), 1, 1, 12),
    ]
    rendered = ProcessesBackend().render(planned)
    assert rendered[0].argv[0] == sys.executable and rendered[0].argv[1:] == planned[0].argv[1:]
    assert ProcessesBackend(launcher_python=False).render(planned)[0].argv[0] == "python"


def test_tuple_keys_and_numpy_values() -> None:
    grid = ParamGrid([(("a", "b"), np.array([[1, 2], [3, 4]])), ("c", np.linspace(0.1, 0.2, 2))])
    assert [{k: format_value(v) for k, v in c.items()} for c in grid.generate_params()] == [
        {"a": "1", "b": "2", "c": "0.1"}, {"a": "1", "b": "2", "c": "0.2"},
        {"a": "3", "b": "4", "c": "0.1"}, {"a": "3", "b": "4", "c": "0.2"},
    ]  # fmt: skip
    assert format_value(np.float32(0.1)) == "0.1" and format_value(np.float64(1e-5)) == "1e-05"
    assert format_value(np.bool_(True)) == "True" and format_value(np.arange(3)) == "[0,1,2]"
    with pytest.raises(ConfigError, match=r"valid: a sequence of 2 values"):
        ParamGrid([(("a", "b"), [[1, 2], [3]])])
    with pytest.raises(ConfigError, match=r"'a' appears twice"):
        ParamGrid([(("a", "b"), [[1, 2]]), ("a", [1])])


def test_the_ported_module_runs_on_the_processes_backend(port_module, tmp_path, capsys) -> None:
    code = main(["--run", port_module, "--backend", "processes", "--train_dir", str(tmp_path),
                 "--max_parallel", "2", "--pause_between", "0"])  # fmt: skip
    out = capsys.readouterr().out
    exp_dir = tmp_path / "cartpole_port" / "cartpole_port"
    logs = [(exp_dir / f"{i:02d}_cartpole_port" / "log.txt").read_text() for i in range(2)]
    assert code == 0, out + "\n".join(log[-3000:] for log in logs)
    assert all(f"{sys.executable} -m poptrain.train" in log for log in logs)
    # hydra.run.dir is honoured: the runs and the shared workspace land under it, inside --train_dir
    for i in range(2):
        assert list((exp_dir / "runs" / f"{i:02d}_cartpole_port" / "nn").glob("*.pth")), i
    ws = Workspace(exp_dir / "runs" / "workspace_cartpole_port")
    assert ws.members() == [0, 1] and all(ws.latest(i) is not None for i in range(2))
    assert not (Path.cwd() / "runs" / "00_cartpole_port").exists()
    meta = ws.latest(1)
    assert meta is not None and "seed=12" in meta.overrides and json.dumps(meta.params)
