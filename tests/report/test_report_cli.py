"""CLI forwarding: play rebuilds the saved config as Hydra overrides; launch without a launcher."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from poptrain.cli import main, play_argv
from poptrain.overrides import compose, flatten
from poptrain.pbt.workspace import Workspace


def test_play_uses_best_checkpoint_and_its_own_config(run_dir: Path, workspace: Path) -> None:
    # a real composed config with a mutated env param and a mutated PPO param
    saved, _ = compose(
        [
            "task=Cartpole",
            "num_envs=64",
            "task.env.resetDist=2.5",
            "train.params.config.learning_rate=0.00042",
            "pbt.enabled=True",
        ]
    )
    (workspace / "best" / "config.yaml").write_text(yaml.safe_dump(saved))
    argv = play_argv(str(run_dir), ["play_episodes=7"])
    assert argv[:3] == [sys.executable, "-m", "poptrain.train"]
    overrides = argv[3:]
    assert {
        "task.env.resetDist=2.5",
        "num_envs=64",
        "train.params.config.learning_rate=0.00042",
        "test=True",
        f"checkpoint={workspace / 'best' / 'checkpoint.pth'}",
        "play_episodes=7",
    } <= set(overrides)
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


def test_launch_forwards_to_the_launcher(tmp_path: Path, capsys) -> None:
    args = ["launch", "--run", "poptrain.experiments.cartpole_pbt", "--dry_run", "--train_dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 experiment(s) of run cartpole_pbt; nothing started" in out
    assert out.count("pbt.policy_idx=") == 4
    assert main(["launch", "--run", "poptrain.no_such_module"]) == 1


def test_module_entry_help() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and all(
        c in out.stdout for c in ("status", "report", "replay", "play", "launch")
    )
