"""The observer's objective tracking, driven with scripted infos (no rl_games training)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from observer_harness import fresh_observer

from poptrain.errors import ConfigError
from poptrain.train import CFG_DIR


def make_observer(tmp_path, *overrides: str, num_envs: int = 8):
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "pbt=pbt_default",
                "pbt.num_policies=2",
                f"train_dir={tmp_path}",
                "pbt.objective_window=4",
                *overrides,
            ],
        )
    observer = fresh_observer(cfg)
    algo = SimpleNamespace(
        num_actors=num_envs,
        writer=None,
        frame=0,
        current_rewards=torch.arange(num_envs, dtype=torch.float32).unsqueeze(1),
    )
    observer.after_init(algo)
    return observer


def done(*ids: int) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.long).reshape(-1, 1)  # rl_games' [k, 1] int64 layout


def test_episode_return_is_the_default_objective(tmp_path):
    o = make_observer(tmp_path)
    o.process_infos({}, done(2, 5))
    assert o.objective() == pytest.approx(3.5)  # current_rewards of rows 2 and 5


def test_true_objective_is_preferred_and_indexed_by_done_rows(tmp_path):
    o = make_observer(tmp_path)
    success = torch.zeros(8)
    success[[1, 3]] = 1.0
    o.process_infos({"true_objective": success}, done(1, 3, 4))
    assert o.objective() == pytest.approx(2 / 3)


def test_window_keeps_a_whole_synchronised_batch(tmp_path):
    o = make_observer(tmp_path, num_envs=8)  # objective_window=4 < num_envs
    values = torch.tensor([0.0] * 4 + [1.0] * 4)
    o.process_infos({"true_objective": values}, done(*range(8)))
    assert o.objective() == pytest.approx(0.5)  # not 1.0 (only the last rows) - every env counts once


def test_dotted_objective_key_scalar_and_nan_values(tmp_path):
    o = make_observer(tmp_path, "pbt.objective=episode.success")
    o.process_infos({"episode": {"success": torch.tensor(1.0)}}, done(0, 1))  # scalar -> per finished episode
    o.process_infos({"episode": {"success": torch.tensor([math.nan] * 8)}}, done(2))  # non-finite: dropped
    assert o.objective() == 1.0 and o.nonfinite_objectives == 1


def test_missing_objective_key_fails_loudly_naming_the_available_keys(tmp_path):
    o = make_observer(tmp_path, "pbt.objective=score")
    with pytest.raises(ConfigError, match=r"pbt.objective='score'.*time_outs"):
        o.process_infos({"time_outs": torch.zeros(8)}, done(0))


def test_no_episode_yet_carries_the_objective_the_weights_came_with(tmp_path):
    o = make_observer(tmp_path)
    assert math.isnan(o.objective())
    o.carried_objective = 7.0
    assert o.objective() == 7.0
    o.process_infos({}, done(1))
    assert o.objective() == 1.0
