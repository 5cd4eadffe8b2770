"""Live hyperparameters in a real rl_games agent: a value set through ``poptrain.api.set_params`` (the PBT
observer's hot-swap path) is the value the agent's next PPO update uses, read from inside that update.

The agent is a real Cartpole ``a2c_continuous`` built by ``poptrain.api.Trainer`` (16 envs: 2 minibatches of
128 per mini-epoch). What the update used is recorded where rl_games uses it:
- learning rate: every optimizer param group at each ``optimizer.step`` (a step pre-hook);
- e_clip: the ``curr_e_clip`` argument of each ``calc_losses`` call (it clips the ratio in the actor loss);
- entropy_coef: the gradient the loss sends into the entropy term, d loss / d entropy_i = -entropy_coef / B per
  sample (``loss = ... - mean(entropy) * entropy_coef``), summed over the minibatch = -entropy_coef;
- mini_epochs: the number of ``calc_losses`` calls in one epoch (mini_epochs x minibatches).
"""

from __future__ import annotations

from typing import Any

import pytest

from poptrain import api
from poptrain.errors import ConfigError
from poptrain.pbt import live

P = live.PREFIX
NUM_ENVS = 16
MINIBATCHES = 2  # num_envs x horizon_length 16 / (minibatch_size_per_env 8 x num_envs)


class UpdateRecorder:
    """Wraps a live agent's ``calc_losses`` and optimizer to record what each minibatch update used."""

    def __init__(self, agent: Any):
        self.e_clips: list[float] = []
        self.entropy_grads: list[float] = []
        self.lrs: list[list[float]] = []
        inner = agent.calc_losses

        def calc_losses(actor_loss_func, old_logp, logp, advantage, curr_e_clip, *rest):
            self.e_clips.append(float(curr_e_clip))
            entropy = rest[-2]  # (value_preds, values, returns, mu, entropy, rnn_masks)
            entropy.register_hook(lambda grad: self.entropy_grads.append(float(grad.sum())))
            return inner(actor_loss_func, old_logp, logp, advantage, curr_e_clip, *rest)

        agent.calc_losses = calc_losses
        agent.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self.lrs.append([g["lr"] for g in opt.param_groups])
        )

    def clear(self) -> None:
        self.e_clips.clear()
        self.entropy_grads.clear()
        self.lrs.clear()


@pytest.fixture
def trainer(tmp_path):
    cfg = api.compose(
        "task=Cartpole", f"num_envs={NUM_ENVS}", "num_threads=1", f"train_dir={tmp_path}", "seed=5"
    )
    with api.Trainer(cfg) as t:
        yield t


def test_changed_values_are_what_the_next_update_uses(trainer):
    rec = UpdateRecorder(trainer.agent)
    trainer.train(1)
    # the config's own values first: e_clip 0.2, entropy_coef 0 (no gradient into entropy), 8 mini-epochs
    assert rec.e_clips == [0.2] * 8 * MINIBATCHES
    assert rec.entropy_grads == pytest.approx([0.0] * 8 * MINIBATCHES, abs=1e-9)
    lr_before = trainer.get_params([P + "learning_rate"])[P + "learning_rate"]

    new_lr = lr_before / 7  # inside the adaptive scheduler's [1e-6, 1e-2], whatever it moved lr to in epoch 1
    new = {P + "learning_rate": new_lr, P + "e_clip": 0.1, P + "entropy_coef": 0.05,
           P + "mini_epochs": 3}  # fmt: skip
    api.set_params(trainer.agent, new)
    assert api.get_params(trainer.agent, list(new)) == pytest.approx(new)
    rec.clear()
    trainer.train(1)

    assert len(rec.e_clips) == 3 * MINIBATCHES  # mini_epochs: 3 passes over the 2 minibatches, not 8
    assert rec.e_clips == [0.1] * 3 * MINIBATCHES
    # the loss sent -entropy_coef into the entropy term at every minibatch (float32 sums of 128 grads)
    assert rec.entropy_grads == pytest.approx([-0.05] * 3 * MINIBATCHES, rel=1e-4)
    # the first step of the epoch ran at the new rate in every param group (the adaptive schedule moves it by at
    # most x1.5 per minibatch afterwards, from the new value)
    assert rec.lrs[0] == pytest.approx([new_lr] * len(rec.lrs[0]))
    assert all(new_lr / 1.5**k * 0.999 <= lrs[0] <= new_lr * 1.5**k * 1.001
               for k, lrs in enumerate(rec.lrs))  # fmt: skip


def test_a_key_that_cannot_change_live_is_refused_and_nothing_changes(trainer):
    agent = trainer.agent
    with pytest.raises(ConfigError, match="horizon_length"):
        api.set_params(agent, {P + "entropy_coef": 0.5, P + "horizon_length": 32})
    assert agent.entropy_coef == 0.0  # the live key of the refused call was not applied either
    with pytest.raises(ConfigError, match="task.env.numEnvs"):  # structural: the env batch is built with it
        api.get_params(agent, ["task.env.numEnvs"])
    # the keys this agent can change: PPO's (adaptive schedule: kl_threshold too) and its task's own
    keys = api.live_keys(agent)
    assert P + "kl_threshold" in keys and "task.env.maxEffort" in keys and P + "horizon_length" not in keys


def test_schedule_owned_params_are_not_live(tmp_path):
    cfg = api.compose("task=Cartpole", "num_envs=16", "num_threads=1", f"train_dir={tmp_path}",
                      "train.params.config.lr_schedule=linear")  # fmt: skip
    with api.Trainer(cfg) as trainer:
        # the linear scheduler owns the learning rate; kl_threshold only acts under the adaptive one
        assert P + "learning_rate" not in api.live_keys(trainer.agent)
        assert P + "kl_threshold" not in api.live_keys(trainer.agent)
        with pytest.raises(ConfigError, match="learning_rate"):
            api.set_params(trainer.agent, {P + "learning_rate": 1e-3})
        groups = [g["lr"] for g in trainer.agent.optimizer.param_groups]
        assert all(lr != 1e-3 for lr in groups)
