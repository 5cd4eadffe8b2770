"""CLI forwarding: play rebuilds the saved config as Hydra overrides; launch without a launcher."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from poptrain.cli import main, play_argv
from poptrain.pbt.workspace import Workspace
from poptrain.report.overrides import compose, flatten


def test_play_uses_best_checkpoint_and_its_own_config(run_dir: Path, workspace: Path) -> None:
    # a real composed config with a mutated env param and a mutated PPO param
    saved, _ = compose(["task=Cartpole", "num_envs=64", "task.env.resetDist=2.5",
                        "train.params.config.learning_rate=0.00042", "pbt.enabled=True"])
    (workspace / "best" / "config.yaml").write_text(yaml.safe_dump(saved))
    argv = play_argv(str(run_dir), ["play_episodes=7"])
    assert argv[:3] == [sys.executable, "-m", "poptrain.train"]
    overrides = argv[3:]
    assert {"task.env.resetDist=2.5", "num_envs=64", "train.params.config.learning_rate=0.00042", "test=True",
            f"checkpoint={workspace / 'best' / 'checkpoint.pth'}", "play_episodes=7"} <= set(overrides)
    assert not any(o.startswith("pbt") for o in overrides)
    # the overrides rebuild the saved policy/env config exactly
    rebuilt = flatten(compose(overrides)[0])
    for key, value in flatten(saved).items():
        if key.startswith(("task.", "train.params.config.learning_rate", "train.params.network")):
            assert rebuilt[key] == value, key


def test_play_without_export_says_so(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    Workspace(ws).ensure_population(2)
    assert main(["play", str(ws)]) == 2
    assert "no exported best policy" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("poptrain.launcher") is not None, reason="launcher present")
def test_launch_without_launcher_is_a_clear_error(capsys) -> None:
    assert main(["launch", "--run", "x"]) == 2
    assert "poptrain.launcher.run is not available" in capsys.readouterr().err


def test_module_entry_help() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "poptrain", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and all(c in out.stdout for c in ("status", "report", "replay", "play", "launch"))
