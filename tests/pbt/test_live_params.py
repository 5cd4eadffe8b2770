"""Live hyperparameters: which can change in a running rl_games agent, and that they really change."""

from types import SimpleNamespace

import pytest
import torch

from poptrain.pbt import live

P = live.PREFIX


def fake_algo(schedule="adaptive", schedule_entropy=False):
    model = torch.nn.Linear(2, 2)
    return SimpleNamespace(
        config={"lr_schedule": schedule, "schedule_entropy": schedule_entropy},
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-4),
        last_lr=3e-4, entropy_coef=0.0, critic_coef=4.0, e_clip=0.2, grad_norm=1.0, bounds_loss_coef=1e-4,
        gamma=0.99, tau=0.95, mini_epochs_num=8, kl_threshold=0.008,
        scheduler=SimpleNamespace(kl_threshold=0.008),
    )


def test_apply_live_changes_agent_and_optimizer():
    algo = fake_algo()
    live.apply_live(algo, {P + "learning_rate": 1e-3, P + "entropy_coef": 0.01, P + "mini_epochs": 5.0,
                           P + "kl_threshold": 0.02, P + "gamma": 0.98})
    assert algo.last_lr == 1e-3
    assert all(g["lr"] == 1e-3 for g in algo.optimizer.param_groups)
    assert algo.entropy_coef == 0.01 and algo.gamma == 0.98
    assert algo.mini_epochs_num == 5 and isinstance(algo.mini_epochs_num, int)
    assert algo.kl_threshold == 0.02 and algo.scheduler.kl_threshold == 0.02
    assert live.read_live(algo, [P + "learning_rate", P + "mini_epochs"]) == {
        P + "learning_rate": 1e-3, P + "mini_epochs": 5}


def test_structural_and_schedule_owned_params_are_not_live():
    assert not live.is_live("task.env.maxEffort")
    assert not live.is_live(P + "horizon_length")
    assert not live.is_live(P + "learning_rate", fake_algo(schedule="linear"))
    assert not live.is_live(P + "kl_threshold", fake_algo(schedule=None))
    assert live.all_live([])
    assert not live.all_live([P + "learning_rate", "task.env.dt"])
    with pytest.raises(ValueError, match="task.env.dt"):
        live.apply_live(fake_algo(), {"task.env.dt": 0.01})
