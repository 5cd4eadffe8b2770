"""The AcrobotHard showcase config (cfg/task/AcrobotHard.yaml, cfg/train/AcrobotHardPPO.yaml) and its PBT
search space (cfg/pbt/mutation/acrobot_showcase.yaml): composition and the properties the showcase relies on.
Config-level and a few hundred env steps only; the learning gap itself is measured by scripts (docs/tasks.md)."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from poptrain import train
from poptrain.experiments.acrobot_pbt import member_overrides
from poptrain.pbt.explore import search_dims
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.priors import initial_sample
from poptrain.tasks import make_task

ENTROPY = "train.params.config.entropy_coef"


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(train.CFG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _run(task, policy, steps: int) -> tuple[int, int]:
    successes = timeouts = 0
    for _ in range(steps):
        _, _, _, extras = task.step(policy(task))
        successes += int(extras["true_objective"].sum())
        timeouts += int(extras["time_outs"].sum())
    return successes, timeouts


def test_acrobot_hard_composes_to_acrobot_with_weak_motor_high_goal_short_limit_and_the_generic_ppo_defaults():
    hard, base = _compose(["task=AcrobotHard"]), _compose(["task=Acrobot"])
    assert hard.task.name == "Acrobot"  # same class, other parameters
    assert hard.task.env.maxTorque == 0.4 and hard.task.env.successHeight == 1.5
    assert hard.task.env.maxEpisodeLength == 300 and base.task.env.maxEpisodeLength == 500
    hard_ppo = OmegaConf.to_container(hard.train.params.config, resolve=True)
    base_ppo = OmegaConf.to_container(base.train.params.config, resolve=True)
    assert hard_ppo.pop("name") == "AcrobotHard" and base_ppo.pop("name") == "Acrobot"
    hard_ppo.pop("full_experiment_name")
    base_ppo.pop("full_experiment_name")
    assert hard_ppo == base_ppo and hard_ppo["entropy_coef"] == 0.0  # defaults not weakened


def test_acrobot_hard_is_solvable_by_pumping_but_not_by_random_torques():
    cfg = _compose(["task=AcrobotHard", "num_envs=128"])
    env = OmegaConf.to_container(cfg.task, resolve=True)

    def pump(task):  # energy pumping: full torque along the second joint's velocity
        return torch.sign(task.state[:, 3:4] + 1e-3)

    gen = torch.Generator().manual_seed(0)

    def noise(task):  # a fresh policy's N(0, 1) exploration, clipped to the action bounds
        return torch.randn(task.num_envs, 1, generator=gen).clamp(-1, 1)

    pumped = make_task("Acrobot", env, num_envs=128, device="cpu", seed=0)
    pumped.reset()
    successes, timeouts = _run(pumped, pump, 600)
    assert successes > 2 * timeouts and successes > 128  # most pumped episodes reach 1.5 within 300 steps
    randomly = make_task("Acrobot", env, num_envs=128, device="cpu", seed=0)
    randomly.reset()
    successes, timeouts = _run(randomly, noise, 300)
    assert successes == 0 and timeouts == 128  # every random episode times out at step 300


def test_showcase_population_uses_the_hard_task_and_an_honest_entropy_prior():
    """Issue 14: the showcase no longer starts entropy_coef's zero rule at our tuned 0.01; it declares the range
    0 .. 0.1 (log space from 1e-4), and a Latin hypercube initial population puts one member in each decade."""
    cfg = _compose([*member_overrides(), "pbt.policy_idx=1", "pbt.initial=sample"])
    assert cfg.task.env.maxTorque == 0.4 and cfg.train.params.config.entropy_coef == 0.0
    params = PbtSettings.from_cfg(OmegaConf.to_container(cfg.pbt, resolve=True), OmegaConf.to_container(cfg))
    spec = params.mutation[ENTROPY]
    assert (spec.min, spec.max, spec.zero) == (0.0, 0.1, None)
    (dim,) = [d for d in search_dims(params.mutation)[0] if d.key == ENTROPY]
    rows = initial_sample(search_dims(params.mutation)[0], params.num_policies, params.sample_seed)
    decades = sorted(int(math.floor(math.log10(r[ENTROPY]))) for r in rows)
    assert decades == [-4, -3, -2]  # 1e-4..1e-3, 1e-3..1e-2, 1e-2..1e-1: 0.03 is not singled out
    assert dim.space == "log" and dim.from_unit(0.0) == pytest.approx(1e-4)


def test_spread_initial_progress_desynchronises_time_outs():
    """AcrobotHard's episodes all time out at step 300 early in training; with spreadInitialProgress the first
    episodes end at spread steps, so a window of finished episodes is not one batch."""
    cfg = _compose(["task=AcrobotHard"])
    env = OmegaConf.to_container(cfg.task, resolve=True)
    assert env["env"]["spreadInitialProgress"] is True

    def first_done_steps(task_cfg):
        task = make_task("Acrobot", task_cfg, num_envs=256, device="cpu", seed=0)
        task.reset()
        steps = torch.full((256,), -1)
        for step in range(300):
            _, _, done, _ = task.step(torch.zeros(256, 1))
            steps[(done.bool()) & (steps < 0)] = step
        return steps

    spread = first_done_steps(env)
    lockstep = first_done_steps({**env, "env": {**env["env"], "spreadInitialProgress": False}})
    assert (lockstep == 299).all()  # zero torque never reaches the goal: every episode times out together
    assert spread.min() >= 0 and len(set(spread.tolist())) > 150  # >150 distinct end steps among 256 rows
