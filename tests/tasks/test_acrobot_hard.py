"""The AcrobotHard showcase config (cfg/task/AcrobotHard.yaml, cfg/train/AcrobotHardPPO.yaml) and its PBT
search space (cfg/pbt/mutation/acrobot_showcase.yaml): composition and the properties the showcase relies on.
Config-level and a few hundred env steps only; the learning gap itself is measured by scripts (docs/tasks.md)."""

from __future__ import annotations

import random

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from poptrain import train
from poptrain.experiments.acrobot_pbt import member_overrides
from poptrain.pbt.mutation import mutate
from poptrain.pbt.params import PbtParams
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


def test_showcase_population_uses_the_hard_task_and_moves_entropy_off_zero_to_the_useful_range():
    cfg = _compose([*member_overrides(), "pbt.policy_idx=1"])
    assert cfg.task.env.maxTorque == 0.4 and cfg.train.params.config.entropy_coef == 0.0
    params = PbtParams.from_cfg(OmegaConf.to_container(cfg.pbt, resolve=True), OmegaConf.to_container(cfg))
    start = params.initial_params(OmegaConf.to_container(cfg, resolve=True))
    moved = []
    for seed in range(50):
        new, changed = mutate(
            start,
            {ENTROPY: params.mutation[ENTROPY]},
            random.Random(seed),
            1.0,
            params.change_min,
            params.change_max,
        )
        assert changed == [ENTROPY]
        moved.append(new[ENTROPY])
    # one mutation from 0 lands within a factor change_max of 0.01 (the generic zero base would give ~1e-4)
    assert min(moved) >= 0.01 / params.change_max - 1e-12 and max(moved) <= 0.01 * params.change_max + 1e-12
