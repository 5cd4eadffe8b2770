"""Staleness follows each member's own pace (issue 9, point 1), driven with an injected clock: no sleeping.

Four real PbtAlgoObservers share one workspace; a scripted agent stands in for rl_games (the engine's I/O,
ranking, exploit and lineage are the real code). The members write in turn, 1,000 fake seconds apart, so each
member's own interval takes 4,000 s, far beyond ``stale_after_s=600``: with staleness judged on wall clock
alone (``stale_interval_factor=0``) every peer reads as stale, nobody is ever replaced, and the member must say
so (warning, TensorBoard scalar, ``poptrain status`` note); with the pace-relative limit the worst member exploits.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from hydra import compose, initialize_config_dir

from poptrain.pbt import observer as obs_mod
from poptrain.pbt.workspace import Workspace
from poptrain.report.population import load_population
from poptrain.report.status import status_json
from poptrain.train import CFG_DIR

N = 4
INTERVAL = 1000  # frames per PBT interval
GAP_S = 1000.0  # fake seconds between two consecutive writes (one member after the other)
OBJECTIVES = [10.0, 9.0, 8.0, 1.0]  # member 3 is far below the others


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Writer:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def fake_agent(member: int, tmp_path) -> SimpleNamespace:
    weights = torch.full((3,), float(member))
    optimizer = SimpleNamespace(param_groups=[{"lr": 3e-4}])
    algo = SimpleNamespace(
        num_actors=4,
        writer=Writer(),
        frame=0,
        epoch_num=0,
        max_epochs=-1,
        max_frames=-1,
        experiment_name=f"m{member}",
        experiment_dir=str(tmp_path / f"m{member}"),
        nn_dir=str(tmp_path),
        config={"lr_schedule": "adaptive"},
        last_lr=3e-4,
        optimizer=optimizer,
        weights=weights,
    )
    algo.get_full_state_weights = lambda: {
        "model": {"w": algo.weights.clone()},
        "epoch": algo.epoch_num,
        "frame": algo.frame,
    }

    def set_full_state_weights(state, set_epoch=True):
        algo.weights = state["model"]["w"].clone()

    algo.set_full_state_weights = set_full_state_weights
    return algo


def population(tmp_path, factor: float):
    clock = Clock(1_000_000.0)
    members = []
    for i in range(N):
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
            cfg = compose(
                config_name="config",
                overrides=[
                    "pbt=pbt_default",
                    "pbt/mutation=lr_only",
                    f"pbt.num_policies={N}",
                    f"pbt.policy_idx={i}",
                    f"train_dir={tmp_path}",
                    f"pbt.interval_steps={INTERVAL}",
                    "pbt.start_after=0",
                    "pbt.initial_delay=0",
                    "pbt.replace_rule=threshold",
                    "pbt.threshold_std=0",
                    "pbt.threshold_abs=0",
                    "pbt.stale_after_s=600",
                    f"pbt.stale_interval_factor={factor}",
                    "pbt.waiting_warn_after=3",
                ],
            )
        obs_mod._START = obs_mod.StartInfo()
        o = obs_mod.PbtAlgoObserver(cfg)
        o.clock = clock
        o.after_init(fake_agent(i, tmp_path))
        o.carried_objective = OBJECTIVES[i]
        members.append(o)
    return clock, members


def run_rounds(clock: Clock, members, rounds: int) -> None:
    for _ in range(rounds):
        for o in members:
            clock.t += GAP_S
            o.algo.frame += INTERVAL
            o.algo.epoch_num += 1
            o.after_print_stats(o.algo.frame, o.algo.epoch_num, 0.0)


def exploits(tmp_path) -> list[dict]:
    ws = Workspace(tmp_path / "pbt_workspace")
    return [e for e in ws.read_lineage() if e.get("event") == "exploit"]


def test_intervals_longer_than_stale_after_s_still_exploit(tmp_path):
    clock, members = population(tmp_path, factor=3.0)
    run_rounds(clock, members, rounds=3)
    events = exploits(tmp_path)
    assert 3 in {e["member"] for e in events}, events
    assert members[3].exploits >= 1
    assert float(members[3].algo.weights[0]) in (0.0, 1.0, 2.0)  # a better member's weights, not its own
    meta = Workspace(tmp_path / "pbt_workspace").latest(0)
    assert meta is not None and meta.extra["interval_s"] == N * GAP_S  # each member's own rhythm
    assert all(o.waiting == 0 for o in members)


def test_wall_clock_only_staleness_goes_inert_and_says_so(tmp_path, caplog):
    clock, members = population(tmp_path, factor=0.0)  # the old rule: limit = stale_after_s = 600 s
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.observer"):
        run_rounds(clock, members, rounds=4)
    assert exploits(tmp_path) == []
    assert members[3].waiting == 3  # round 1 only sets the first mark (frame 2,000); rounds 2-4 wait
    lines = [r.getMessage() for r in caplog.records if "no PBT decision possible" in r.getMessage()]
    assert len(lines) == N  # one line per member, at its 3rd waiting iteration (not one per iteration)
    assert "1 of 4 members valid, 0 missing (not started or not yet past start_after), 3 stale" in lines[0]
    tags = [
        (tag, value) for tag, value, _ in members[3].algo.writer.scalars if tag == "pbt/waiting_iterations"
    ]
    assert [v for _, v in tags] == [1.0, 2.0, 3.0]
    # the next write carries the streak into the metadata; status shows it
    run_rounds(clock, members, rounds=1)
    view = load_population(tmp_path / "pbt_workspace", now=clock.t, stale_after_s=600)
    notes = [n for n in status_json(view)["notes"] if "waiting" in n]
    assert len(notes) == N, notes
    assert (
        "member 003 waiting: no PBT decision possible for 3 iterations (1 valid, 0 missing, 3 stale"
        in notes[3]
    )
