"""W&B: a PBT restart (os.execv keeps the environment) resumes the same W&B run (fake wandb module)."""

from __future__ import annotations

import sys
import types

import pytest
from hydra import compose, initialize_config_dir

from poptrain import wandb_run
from poptrain.config import CFG_DIR
from poptrain.errors import ConfigError


def test_restart_resumes_the_same_wandb_run(monkeypatch):
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(id=kwargs.get("id") or "run-abc")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.setenv(
        wandb_run.WANDB_RUN_ENV, "placeholder"
    )  # recorded, so the test leaves the env as it was
    monkeypatch.delenv(wandb_run.WANDB_RUN_ENV)
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["wandb_activate=True", "experiment=m0"])
    wandb_run.init_wandb(cfg)  # first start: a new run
    assert calls[0]["id"] is None and calls[0]["resume"] is None and calls[0]["name"] == "m0"
    assert wandb_run.os.environ[wandb_run.WANDB_RUN_ENV] == "run-abc"
    wandb_run.init_wandb(cfg)  # the restarted process sees the variable os.execv carried over
    assert calls[1]["id"] == "run-abc" and calls[1]["resume"] == "allow"


def test_wandb_missing_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["wandb_activate=True"])
    with pytest.raises(ConfigError, match=r"poptrain\[wandb\]"):
        wandb_run.init_wandb(cfg)
