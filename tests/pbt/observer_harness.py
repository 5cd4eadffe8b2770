"""A population of real PbtAlgoObservers in one process, with a scripted agent and an injected clock.

The engine's I/O, ranking, exploit and lineage are the real code; the agent stands in for rl_games (weights
are one tensor, the objective is whatever the test sets), so a test can script decisions without training.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from hydra import compose, initialize_config_dir

from poptrain.pbt import observer as obs_mod
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.workspace import Workspace
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


def fresh_observer(cfg) -> obs_mod.PbtAlgoObserver:
    """An observer of a fresh start that skips start-up (no claim, no initial mutation): the test scripts it."""
    settings = PbtSettings.from_cfg(cfg.pbt, cfg)
    return obs_mod.PbtAlgoObserver(cfg, settings, obs_mod.workspace_for(cfg, settings), obs_mod.StartInfo())


def population(tmp_path, factor: float = 3.0, extra: tuple[str, ...] = ()):
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
                    *extra,
                ],
            )
        o = fresh_observer(cfg)
        o.clock = clock
        o.after_init(fake_agent(i, tmp_path))
        o.carried_objective = OBJECTIVES[i]
        members.append(o)
    return clock, members


def run_rounds(clock: Clock, members, rounds: int, hold: bool = False) -> None:
    """Every member steps one interval per round, in turn; ``hold`` keeps each objective at OBJECTIVES."""
    for _ in range(rounds):
        for i, o in enumerate(members):
            if hold:  # the scripted objective, also after an exploit (not the source's, see carried_source)
                o.window.clear()
                o.carried_source = None
                o.carried_objective = OBJECTIVES[i]
            clock.t += GAP_S
            o.algo.frame += INTERVAL
            o.algo.epoch_num += 1
            o.after_print_stats(o.algo.frame, o.algo.epoch_num, 0.0)


def exploits(tmp_path) -> list[dict]:
    ws = Workspace(tmp_path / "pbt_workspace")
    return [e for e in ws.read_lineage() if e.event == "exploit"]
