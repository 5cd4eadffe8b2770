"""Live task parameters: a new value changes what the running env does at its very next step, in place."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from poptrain.errors import ConfigError
from poptrain.pbt import live
from poptrain.tasks import make_task
from poptrain.tasks.acrobot import Acrobot
from poptrain.tasks.base import LiveParam
from poptrain.tasks.cartpole import Cartpole
from poptrain.train import CFG_DIR, run_training

N = 2048


def spread_state(task: Any, seed: int) -> None:
    """States over the whole range, so that some rows fail (Cartpole) or succeed (Acrobot) on the next step."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(task, Cartpole):
        task.state.copy_((torch.rand(N, 4, generator=gen) - 0.5) * torch.tensor([6.2, 4.0, 3.3, 6.0]))
    elif isinstance(task, Acrobot):
        task.state.copy_(
            (torch.rand(N, 4, generator=gen) - 0.5) * torch.tensor([2 * math.pi, 2 * math.pi, 4.0, 4.0])
        )
    else:
        task.theta.copy_((torch.rand(N, generator=gen) - 0.5) * 2 * math.pi)
        task.theta_dot.copy_((torch.rand(N, generator=gen) - 0.5) * 20)  # some beyond maxSpeed 8


def twin_pair(name: str) -> tuple[Any, Any]:
    """Two tasks in the same mid-episode state (same seed, same steps)."""
    tasks = [make_task(name, {}, num_envs=N, seed=7) for _ in range(2)]
    for t in tasks:
        t.reset()
        spread_state(t, seed=11)
        t.progress_buf.fill_(5)
    return tasks[0], tasks[1]


def new_value(task: Any, key: str) -> float:
    param: LiveParam = task.live_params[key]
    old = float(getattr(task, param.attr))
    value = old * 2.0 if old != 0 else 1.5
    return min(value, param.max)


CASES = [
    (name, key)
    for name in ("Cartpole", "Acrobot", "Pendulum")
    for key in sorted(make_task(name, {}, num_envs=1).live_params)
]


@pytest.mark.parametrize(("name", "key"), CASES)
def test_a_live_key_changes_the_next_step_in_place_without_a_reset(name, key):
    changed, control = twin_pair(name)
    actions = torch.rand(N, 1, generator=torch.Generator().manual_seed(3)) * 2 - 1
    state_before = [b.clone() for b in (changed.obs_buf, changed.progress_buf)]
    value = new_value(changed, key)

    changed.set_live({key: value})

    # nothing reset: the env continues its episode from the same state ...
    assert torch.equal(changed.obs_buf, state_before[0]) and torch.equal(
        changed.progress_buf, state_before[1]
    )
    assert changed.live_values()[key] == value
    # ... and its very next step behaves differently from the same env with the old value
    changed.step(actions)
    obs_a = changed.obs_buf.clone()
    rew_a = changed.rew_buf.clone()
    control.step(actions)
    assert not (torch.equal(obs_a, control.obs_buf) and torch.equal(rew_a, control.rew_buf)), (name, key)
    # and exactly like an env built with that value from the start
    fresh = make_task(name, {"env": {key: value}}, num_envs=N, seed=7)
    fresh.reset()
    spread_state(fresh, seed=11)
    fresh.progress_buf.fill_(5)
    fresh.step(actions)
    assert torch.allclose(fresh.obs_buf, obs_a, atol=1e-6) and torch.allclose(fresh.rew_buf, rew_a, atol=1e-6)


def test_bad_keys_and_values_are_refused_before_anything_changes():
    task = make_task("Cartpole", {}, num_envs=4)
    before = task.live_values()
    with pytest.raises(ConfigError) as err:
        task.set_live({"maxEffort": 20.0, "maxEpisodeLength": 100, "resetDist": -1.0, "dt": "fast"})
    text = str(err.value)
    assert "task.env.maxEpisodeLength cannot change" in text and "maxEffort" in text  # names the live keys
    assert (
        "task.env.resetDist=-1.0 is outside [0.0, inf]" in text
        and "task.env.dt='fast' is not a number" in text
    )
    assert task.live_values() == before  # maxEffort was valid but the batch was refused as a whole
    with pytest.raises(ConfigError, match="successBonus=nan"):
        make_task("Acrobot", {}, num_envs=4).set_live({"successBonus": math.nan})


def test_a_parameter_that_declares_a_reset_restarts_every_episode():
    class ResetCartpole(Cartpole):
        live_params = {**Cartpole.live_params, "resetDist": LiveParam("reset_dist", reset=True, min=0.0)}

    task = ResetCartpole({}, num_envs=N, seed=1)
    task.reset()
    for _ in range(20):
        task.step(torch.zeros(N, 1))
    obs = task.obs_buf
    task.set_live({"resetDist": 2.0})
    assert int(task.progress_buf.max()) == 0
    assert task.obs_buf is obs and float(task.obs_buf[:, 0].abs().max()) <= 0.1  # fresh starts, same buffer


def test_a_task_without_live_params_makes_every_task_key_a_restart():
    from types import SimpleNamespace

    from poptrain.rlg import TaskVecEnv

    gym_task = make_task("Gym", {"env": {"id": "Pendulum-v1"}}, num_envs=2)  # gymnasium envs: nothing live
    algo = SimpleNamespace(vec_env=TaskVecEnv(gym_task))
    assert not live.is_live("task.env.id", algo) and not live.all_live(["task.env.maxTorque"], algo)
    algo = SimpleNamespace(vec_env=TaskVecEnv(make_task("Pendulum", {}, num_envs=2)))
    assert live.all_live(["task.env.maxTorque", "task.env.costTorque"], algo)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """A real rl_games agent on Cartpole after 2 epochs (the handle the PBT observer gets)."""
    captured: dict[str, Any] = {}

    class Capture:
        def after_init(self, algo):
            captured["algo"] = algo

    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "task=Cartpole",
                "num_envs=64",
                "max_iterations=2",
                f"train_dir={tmp_path_factory.mktemp('live')}",
                "train.params.config.save_frequency=0",
            ],
        )
    run_training(cfg, observers=[Capture()])
    return captured["algo"]


def test_the_engine_treats_declared_task_keys_as_live_on_a_real_agent(agent):
    assert live.is_live("task.env.maxEffort", agent) and live.is_live("task.env.rewardPoleVel", agent)
    assert not live.is_live("task.env.maxEpisodeLength", agent) and not live.is_live("task.env.maxEffort")
    assert live.all_live(["task.env.maxEffort", live.PREFIX + "entropy_coef"], agent)
    task = agent.vec_env.task
    twin = Cartpole({}, num_envs=64, seed=0)
    twin.state.copy_(task.state)
    actions = torch.full((64, 1), 0.5)

    live.apply_live(agent, {"task.env.maxEffort": 25.0, live.PREFIX + "entropy_coef": 0.02})

    assert agent.entropy_coef == 0.02
    assert live.read_live(agent, ["task.env.maxEffort"]) == {"task.env.maxEffort": 25.0}
    x_dot_before = task.state[:, 1].clone()
    agent.vec_env.step(actions)  # the agent's own env object: the next step pushes with 25 N, not 10
    twin.step(actions)
    going = (task.reset_buf == 0) & (twin.reset_buf == 0)  # rows that reset drew new random states
    push_25 = (task.state[:, 1] - x_dot_before)[going]
    push_10 = (twin.state[:, 1] - x_dot_before)[going]
    assert going.sum() > 32 and torch.all(push_25 > push_10)
    with pytest.raises(ConfigError, match="outside"):
        live.apply_live(agent, {"task.env.maxEffort": -1.0, live.PREFIX + "entropy_coef": 0.03})
    assert agent.entropy_coef == 0.02  # the task refused first: nothing changed


@pytest.mark.parametrize(
    ("task", "mutation"),
    [("Cartpole", "cartpole_env"), ("Cartpole", "cartpole_effort"), ("AcrobotHard", "acrobot_reward")],
)
def test_env_mutation_sets_are_entirely_live_so_they_never_restart(task, mutation, tmp_path):
    from types import SimpleNamespace

    from poptrain.build import task_factory
    from poptrain.pbt.params import PbtSettings
    from poptrain.rlg import TaskVecEnv

    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"task={task}",
                "num_envs=4",
                "pbt=pbt_default",
                f"pbt/mutation={mutation}",
                f"train_dir={tmp_path}",
            ],
        )
    params = PbtSettings.from_cfg(cfg.pbt, cfg)  # every key exists in the composed config
    algo = SimpleNamespace(vec_env=TaskVecEnv(task_factory(cfg)()), config={"lr_schedule": "adaptive"})
    assert any(k.startswith("task.env.") for k in params.mutation)
    assert live.all_live(list(params.mutation), algo), [
        k for k in params.mutation if not live.is_live(k, algo)
    ]
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        restart_cfg = compose(
            config_name="config", overrides=["task=Cartpole", "pbt=pbt_default", "pbt/mutation=task_only"]
        )
    (key,) = PbtSettings.from_cfg(restart_cfg.pbt, restart_cfg).mutation
    assert not live.is_live(key, SimpleNamespace(vec_env=TaskVecEnv(task_factory(restart_cfg)())))
