"""poptrain.api: compose from overrides, train 3 epochs from Python, change a live hyperparameter, save, load."""

from __future__ import annotations

import pytest
import torch

from poptrain import api
from poptrain.errors import ConfigError

ENTROPY = "train.params.config.entropy_coef"


def test_compose_reports_bad_overrides():
    with pytest.raises(ConfigError, match="unknown task 'Nope'"):
        api.compose("task=Nope")
    with pytest.raises(ConfigError, match="pbt=no_pbt"):
        api.Trainer(api.compose("task=Cartpole", "pbt=pbt_default"))


def test_train_set_live_param_save_load(tmp_path):
    cfg = api.compose("task=Cartpole", "num_envs=64", f"train_dir={tmp_path}", "seed=3")
    with api.Trainer(cfg) as trainer:
        stats = trainer.train(3)
        assert trainer.epoch == 3 and trainer.frames == 3 * 64 * 16  # num_envs x horizon_length per epoch
        assert stats.n > 0 and stats.mean > 0 and stats.se > 0  # Cartpole's early episodes are short

        assert trainer.get_params([ENTROPY]) == {ENTROPY: 0.0}
        trainer.set_params({ENTROPY: 0.02})
        assert trainer.agent.entropy_coef == 0.02 and trainer.get_params([ENTROPY]) == {ENTROPY: 0.02}
        with pytest.raises(ConfigError, match="cannot change.*horizon_length"):
            trainer.set_params({"train.params.config.horizon_length": 32})

        path = trainer.save(tmp_path / "three.pth")
        saved = {k: v.clone() for k, v in trainer.agent.model.state_dict().items()}
        trainer.train(2)
        assert trainer.epoch == 5
        changed = any(not torch.equal(v, saved[k]) for k, v in trainer.agent.model.state_dict().items())
        assert changed  # two more epochs of PPO updates moved the weights

        trainer.load(path)
        assert trainer.epoch == 3 and trainer.frames == 3 * 64 * 16
        for k, v in trainer.agent.model.state_dict().items():
            assert torch.equal(v, saved[k]), k
        trainer.train(1)  # training continues from the loaded state
        assert trainer.epoch == 4
