"""status and report on workspace content a careless or hostile co-user wrote: never a traceback, never markup.

Each odd value here crashed ``poptrain status`` or ``poptrain report`` before (issue 10): a param value ``[/x]``
(rich MarkupError), string and NaN param values, a param key matplotlib parses as math text, invalid UTF-8 and
900-deep YAML in best/, a lineage line with a non-int source, symlinked best/ and member folders.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from synthetic import LR, simulate

from poptrain.cli import main
from poptrain.pbt.workspace import MemberMeta, Workspace

MATH = "train.params.config.$\\frac{$"
MARKUP = "train.params.config.[/bold]"


def _odd_member(ws: Workspace, member: int, it: int, params: dict) -> None:
    ws.write_checkpoint(
        MemberMeta(member=member, iteration=it, frames=4096 * it, epoch=it, objective=float(member), params=params,
                   checkpoint=f"{it:06d}.pth", experiment="[red]exp[/]\x1b[2J", experiment_dir="/e", time=1e9,
                   num_policies=6, overrides=["task=Cartpole"]),
        {"model": {"w": torch.zeros(1)}},
    )  # fmt: skip


@pytest.fixture
def odd_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    ws = simulate(root, members=6, iterations=3, config={"task": {"name": "Cartpole"}})
    # member 4 and 5: odd params (string, NaN, inf, None, a list, math text and markup in keys and values)
    for it in (4, 5):
        _odd_member(ws, 4, it, {LR: "[/x]", MATH: math.nan, MARKUP: "[bold]b", "k": None})
        _odd_member(
            ws,
            5,
            it,
            {
                LR: math.inf,
                MATH: [1, 2],
                MARKUP: 3,
                "k": "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
            },
        )
    ws.append_lineage("exploit", 4, source=5, source_iteration=4, iteration=4, frames=4096 * 4,
                      old_params={LR: "[/x]"}, new_params={LR: math.nan, MATH: "$x^$"}, changed=[LR, MATH])  # fmt: skip
    forged = {"event": "exploit", "member": 3, "source": "1]", "source_iteration": "x", "iteration": 2,
              "frames": 1, "old_params": {}, "new_params": {}, "changed": [], "mode": None, "time": 1.0}  # fmt: skip
    with open(ws.lineage_path, "a") as f:
        f.write(json.dumps(forged) + "\n")
    return root


@pytest.mark.parametrize("best", ["utf8", "deep", "markup", "symlink"])
def test_status_and_report_survive_odd_data(odd_workspace: Path, tmp_path: Path, capsys, best: str) -> None:
    best_dir = odd_workspace / "best"
    best_dir.mkdir(exist_ok=True)
    if best == "utf8":
        (best_dir / "config.yaml").write_bytes(b"task:\n  name: \xff\xfe\n")
        (best_dir / "meta.yaml").write_bytes(b"member: \xc3\x28\n")
    elif best == "deep":
        (best_dir / "config.yaml").write_text("[" * 900 + "]" * 900 + "\n")
        (best_dir / "meta.yaml").write_text("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 900)))
    elif best == "markup":
        (best_dir / "config.yaml").write_text("task:\n  name: '[/x] $\\frac{$'\nexperiment: '[bold]'\n")
        (best_dir / "meta.yaml").write_text("member: '[/x]'\nobjective: nan\n")
    else:  # best/ and a member folder are links to folders outside the workspace
        outside = tmp_path / "outside"
        (outside / "best").mkdir(parents=True)
        (outside / "best" / "config.yaml").write_text("secret: 1\n")
        os.rename(best_dir, tmp_path / "old_best")
        best_dir.symlink_to(outside / "best")
        simulate(outside / "pop", members=1, iterations=1)
        (odd_workspace / "009").symlink_to(outside / "pop" / "000")
    assert main(["status", str(odd_workspace)]) == 0
    out = capsys.readouterr().out
    assert "[/x]" in out or "/x" in out  # shown as text
    assert "\x1b" not in out
    assert main(["status", str(odd_workspace), "--json"]) == 0
    json.loads(capsys.readouterr().out)
    assert main(["report", str(odd_workspace), "--out", str(tmp_path / "r")]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<script" not in html.lower()
    if best == "symlink":
        assert "secret: 1" not in html and "outside" not in html and " 009 " not in out, html
