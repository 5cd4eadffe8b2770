"""End-to-end replay on Cartpole: two training segments chained through a checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from synthetic import LR

from poptrain.checkpoints import load_checkpoint_file
from poptrain.cli import main
from poptrain.pbt.workspace import MemberMeta, Workspace

ENT = "train.params.config.entropy_coef"


@pytest.mark.timeout(240)
def test_replay_retrains_along_the_schedule(tmp_path: Path, capsys) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ensure_population(2)
    base = ["task=Cartpole", "num_envs=16", "num_threads=1", "pbt=no_pbt"]
    # member 1 ran lr 3e-4 for 2 epochs (512 frames at 16 envs x 16 steps); member 0 copied it and went on
    for member, its in {1: [(1, 512, 3e-4)], 0: [(1, 512, 1e-3), (2, 1024, 1e-4)]}.items():
        for it, frames, lr in its:
            ws.write_checkpoint(
                MemberMeta(
                    member=member,
                    iteration=it,
                    frames=frames,
                    epoch=frames // 256,
                    objective=1.0,
                    params={LR: lr, ENT: 0.0},
                    checkpoint=f"{it:06d}.pth",
                    experiment="e",
                    experiment_dir="/e",
                    time=1.0,
                    num_policies=2,
                    overrides=base,
                ),
                {"model": {}},
            )
    ws.append_lineage(
        "exploit",
        0,
        source=1,
        source_iteration=1,
        iteration=1,
        frames=512,
        old_params={LR: 1e-3, ENT: 0.0},
        new_params={LR: 1e-4, ENT: 0.0},
    )
    out = tmp_path / "replay"
    assert main(["replay", str(ws.root), "--member", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    segments = re.findall(r"^replay: segment (\d)/2: .*", text, re.M)
    assert segments == ["1", "2"]
    first, second = (line for line in text.splitlines() if line.startswith("replay: segment"))
    assert f"{LR}=0.0003" in first and "max_iterations=2" in first and "checkpoint=" not in first
    assert f"{LR}=0.0001" in second and "max_iterations=4" in second and "checkpoint=" in second
    final = re.search(r"^replay: member=0 segments=2 checkpoint=(.+)$", text, re.M)
    assert final
    state = load_checkpoint_file(final.group(1))
    assert int(state["epoch"]) == 4 and int(state["frame"]) == 1024
