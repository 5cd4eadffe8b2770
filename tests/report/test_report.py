"""status / report / replay on synthetic populations written through the real Workspace API."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import matplotlib.image
import pytest
from synthetic import LR, simulate

from poptrain.cli import main
from poptrain.pbt.workspace import MemberMeta, Workspace
from poptrain.replay import base_overrides, plan_segments, segment_argv
from poptrain.report.locate import find_workspace
from poptrain.report.population import load_population
from poptrain.report.schedule import build_schedule
from poptrain.report.status import status_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _latest(ws: Path) -> dict[int, MemberMeta]:
    w = Workspace(ws)
    return {m: w.latest(m) for m in w.members()}  # type: ignore[misc]


# ---- locating ---------------------------------------------------------------------------------------
def test_run_dir_and_workspace_both_resolve(run_dir: Path, workspace: Path) -> None:
    assert find_workspace(run_dir) == workspace
    assert find_workspace(workspace) == workspace


@pytest.mark.parametrize("kind", ["missing", "empty_dir", "file", "two"])
def test_bad_path_says_what_was_expected(tmp_path: Path, run_dir: Path, kind: str, capsys) -> None:
    path = {
        "missing": tmp_path / "nope",
        "empty_dir": tmp_path / "empty",
        "file": tmp_path / "f.txt",
        "two": run_dir,
    }[kind]
    if kind == "empty_dir":
        path.mkdir()
    if kind == "file":
        path.write_text("x")
    if kind == "two":
        simulate(run_dir / "other" / "pbt_workspace", members=2, iterations=1)
    assert main(["status", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err
    assert ("pass one of them" if kind == "two" else "expected a PBT workspace") in err


# ---- status -----------------------------------------------------------------------------------------
def test_status_table_shows_every_member_and_verdict(run_dir: Path, workspace: Path, capsys) -> None:
    latest = _latest(workspace)
    best = max(latest, key=lambda m: latest[m].objective)
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for member, meta in latest.items():
        row = next(line for line in out.splitlines() if re.match(rf"\s*\d+\s+{member:03d}\s", line))
        assert f"{meta.objective:.4g}" in row and "finished" in row
    assert f"best: member {best} objective {latest[best].objective:.4g}" in out


def test_status_rows_rank_by_objective_with_current_params(workspace: Path) -> None:
    latest = _latest(workspace)
    rows = status_rows(load_population(workspace))
    assert [r.member for r in rows] == sorted(latest, key=lambda m: -latest[m].objective)
    assert [r.rank for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert (
            r.params == latest[r.member].params and r.iteration == 6 and r.frames == latest[r.member].frames
        )
        assert r.exploits == latest[r.member].exploits


def test_status_json_shape(run_dir: Path, workspace: Path, capsys) -> None:
    latest = _latest(workspace)
    assert main(["status", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"] == max(latest, key=lambda m: latest[m].objective)
    assert sorted(m["member"] for m in data["members"]) == sorted(latest)
    for entry in data["members"]:
        assert {"member", "objective", "iteration", "frames", "params", "state"} <= set(entry)
        meta = latest[entry["member"]]
        assert entry["objective"] == pytest.approx(meta.objective)
        assert (entry["iteration"], entry["frames"], entry["params"], entry["state"]) == (
            meta.iteration,
            meta.frames,
            meta.params,
            "finished",
        )


def test_stale_and_running_states(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    simulate(ws, members=2, iterations=2, finished=False, now=1000.0)
    view = load_population(ws, now=1000.0 + 30, stale_after_s=60)
    assert {r.state for r in status_rows(view)} == {"running"}
    view = load_population(ws, now=1000.0 + 600, stale_after_s=60)
    assert {r.state for r in status_rows(view)} == {"stale"}


def test_empty_and_half_written_workspace_shows_what_exists(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    Workspace(ws).ensure_population(3)
    assert main(["status", str(ws), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"] is None and {m["state"] for m in data["members"]} == {"no data"}
    # member 0 has one good iteration, member 1 only a truncated metadata file
    simulate(ws, members=3, iterations=1)
    good = (ws / "001" / "000001.yaml").read_bytes()
    (ws / "001" / "000001.yaml").write_bytes(good[: len(good) // 2])
    (ws / "002" / "000001.yaml").unlink()
    assert main(["status", str(ws)]) == 0
    captured = capsys.readouterr()
    assert "member 001: folder exists but holds no valid metadata" in captured.out
    assert "000001.yaml" in captured.out  # the workspace's skip warning, shown as a note
    assert main(["report", str(ws), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()


def test_corrupt_lineage_line_is_skipped_and_reported(workspace: Path, capsys) -> None:
    events = Workspace(workspace).read_lineage()
    with open(workspace / "lineage.jsonl", "ab") as f:
        f.write(b'{"event": "exploit", "member": 1, "sou\n')
    view = load_population(workspace)
    assert view.lineage == events
    assert any("corrupt line" in n and "lineage.jsonl" in n for n in view.notes)
    assert main(["status", str(workspace), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lineage_events"] == len(events) and any("corrupt line" in n for n in data["notes"])


# ---- report -----------------------------------------------------------------------------------------
def test_report_writes_pngs_and_self_contained_html(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["lineage.png", "objective.png", "params.png"]
    page = (out / "report.html").read_text()
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert f"href='{png.name}'" in page
        assert base64.b64encode(data).decode() in page  # embedded: opens offline without the files
    assert "Best member&#x27;s full config" in page or "Best member's full config" in page
    assert "learning_rate" in page and "src='http" not in page


def test_report_on_64_members(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    simulate(ws, members=64, iterations=4, seed=1)
    assert main(["report", str(ws), "--out", str(tmp_path / "r")]) == 0
    assert matplotlib.image.imread(tmp_path / "r" / "lineage.png").shape[0] > 800  # grows with members


# ---- replay schedule --------------------------------------------------------------------------------
def _constructed(tmp_path: Path, corrupt_mutate: bool = False) -> Path:
    """2 mutates at 200 (lr 2->3); 0 copies 2@it2 at 200 (lr 2.2, a dead end for 0's final weights);
    1 copies 2@it3 at 300 (lr 3.3); 0 copies 1@it4 at 400 (lr 1.1)."""
    ws = Workspace(tmp_path / "ws")
    ws.ensure_population(3)
    lrs = {2: [2, 2, 3, 3], 1: [5, 5, 5, 3.3, 3.3], 0: [1, 1, 2.2, 2.2, 1.1]}
    for member, values in lrs.items():
        for it, lr in enumerate(values, start=1):
            ws.write_checkpoint(
                MemberMeta(
                    member=member,
                    iteration=it,
                    frames=100 * it,
                    epoch=it,
                    objective=it,
                    params={LR: float(lr)},
                    checkpoint=f"{it:06d}.pth",
                    experiment="e",
                    experiment_dir="/e",
                    time=1.0,
                    num_policies=3,
                    overrides=[
                        "task=Cartpole",
                        "num_envs=8",
                        f"{LR}={lr}",
                        "pbt.policy_idx=0",
                        "checkpoint=/x.pth",
                    ],
                ),
                {"model": {}},
            )
    ws.append_lineage("mutate", 2, iteration=2, frames=200, old_params={LR: 2.0}, new_params={LR: 3.0})
    if corrupt_mutate:
        lines = (ws.root / "lineage.jsonl").read_text().splitlines()
        (ws.root / "lineage.jsonl").write_text(lines[0][:20] + "\n")
    ws.append_lineage(
        "exploit",
        0,
        source=2,
        source_iteration=2,
        iteration=2,
        frames=200,
        old_params={LR: 1.0},
        new_params={LR: 2.2},
    )
    ws.append_lineage(
        "exploit",
        1,
        source=2,
        source_iteration=3,
        iteration=3,
        frames=300,
        old_params={LR: 5.0},
        new_params={LR: 3.3},
    )
    ws.append_lineage(
        "exploit",
        0,
        source=1,
        source_iteration=4,
        iteration=4,
        frames=400,
        old_params={LR: 2.2},
        new_params={LR: 1.1},
    )
    return ws.root


@pytest.mark.parametrize("corrupt", [False, True])
def test_schedule_follows_weight_lineage(tmp_path: Path, corrupt: bool) -> None:
    view = load_population(_constructed(tmp_path, corrupt_mutate=corrupt))
    schedule = build_schedule(0, view.histories, view.lineage)
    assert [(s.member, s.start_frames, s.end_frames, s.replay_start) for s in schedule.segments] == [
        (2, 0, 300, 0),
        (1, 300, 400, 300),
        (0, 400, 500, 400),
    ]
    assert [(p.frames, p.params[LR], p.member) for p in schedule.points] == [
        (0, 2.0, 2),
        (200, 3.0, 2),
        (300, 3.3, 1),
        (400, 1.1, 0),
    ]
    assert schedule.points[1].reason == ("metadata" if corrupt else "mutate")
    assert schedule.total_frames == 500 and schedule.params_at(350) == {LR: 3.3}
    # member 2 never copied anyone: its own history only
    own = build_schedule(2, view.histories, view.lineage)
    assert [(p.frames, p.params[LR]) for p in own.points] == [(0, 2.0), (200, 3.0)]


def test_replay_print_and_member_out_of_range(tmp_path: Path, capsys) -> None:
    ws = _constructed(tmp_path)
    assert main(["replay", str(ws), "--member", "0", "--print"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+300\s+train\.params\.config\.learning_rate=3\.3\s", out, re.M)
    assert "copied from member 1 iteration 4" in out
    assert main(["replay", str(ws), "--member", "7", "--print"]) == 2
    err = capsys.readouterr().err
    assert "--member 7 is out of range" in err and "0..2" in err


def test_segment_plan_cuts_at_epochs(tmp_path: Path) -> None:
    view = load_population(_constructed(tmp_path))
    schedule = build_schedule(0, view.histories, view.lineage)
    base = base_overrides(view.latest(0).overrides, [LR])
    assert base == ["task=Cartpole", "num_envs=8"]
    plan = plan_segments(schedule, frames_per_epoch=100, base=base)
    assert [(s.start_epoch, s.max_iterations, s.params[LR]) for s in plan.segments] == [
        (0, 2, 2.0),
        (2, 3, 3.0),
        (3, 4, 3.3),
        (4, 5, 1.1),
    ]
    coarse = plan_segments(schedule, frames_per_epoch=250, base=base)  # changes < 1 epoch apart merge
    assert [(s.start_epoch, s.max_iterations) for s in coarse.segments] == [(0, 1), (1, 2)] and coarse.notes
    argv = segment_argv(plan, plan.segments[1], "/t", "rep", "/t/a.pth")
    assert argv[3:] == [
        "task=Cartpole",
        "num_envs=8",
        f"{LR}=3.0",
        "train_dir=/t",
        "experiment=rep",
        "max_iterations=3",
        "checkpoint=/t/a.pth",
    ]


def test_best_lineage_schedule_in_synthetic_population(workspace: Path) -> None:
    view = load_population(workspace)
    best = max(view.histories, key=lambda m: view.histories[m][-1].objective)
    schedule = build_schedule(best, view.histories, view.lineage)
    assert schedule.points[-1].params == view.histories[best][-1].params  # ends with the final config
    assert schedule.total_frames == view.histories[best][-1].frames
    assert not math.isnan(schedule.total_frames)


def test_replay_of_a_member_that_added_a_key_with_plus_keeps_the_prefix(tmp_path: Path) -> None:
    # a mutable param the defaults lack: the member ran with `+task.env.extra=...` (restarts kept the `+`)
    from poptrain.overrides import compose
    from poptrain.replay import vet_schedule

    extra = "task.env.extra"
    ws = Workspace(tmp_path / "ws")
    ws.ensure_population(1)
    for it, value in enumerate([1.0, 2.0], start=1):
        ws.write_checkpoint(MemberMeta(member=0, iteration=it, frames=100 * it, epoch=it, objective=it,
                                       params={extra: value}, checkpoint=f"{it:06d}.pth", experiment="e",
                                       experiment_dir="/e", time=1.0, num_policies=1,
                                       overrides=["task=Cartpole", "num_envs=8", f"+{extra}={value}",
                                                  "pbt.policy_idx=0"]),
                            {"model": {}})  # fmt: skip
    ws.append_lineage("mutate", 0, iteration=1, frames=100, old_params={extra: 1.0}, new_params={extra: 2.0})
    view = load_population(ws.root)
    base = base_overrides(view.latest(0).overrides, [extra])
    schedule = vet_schedule(build_schedule(0, view.histories, view.lineage), base)
    plan = plan_segments(schedule, frames_per_epoch=100, base=base)
    assert [s.params for s in plan.segments] == [{extra: 1.0}, {extra: 2.0}]
    argv = segment_argv(plan, plan.segments[0], tmp_path / "t", "rep", None, ["num_envs=4"])
    assert argv[3:] == [
        "task=Cartpole",
        f"+{extra}=1.0",
        f"train_dir={tmp_path / 't'}",
        "experiment=rep",
        "max_iterations=1",
        "num_envs=4",
    ]
    resolved, _raw = compose(argv[3:])  # composes: the key is added, not overridden
    assert resolved["task"]["env"]["extra"] == 1.0 and resolved["num_envs"] == 4
