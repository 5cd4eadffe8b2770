"""Weights & Biases for a training run (``wandb_activate=True``): one W&B run per member, kept across restarts."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from poptrain.errors import ConfigError

WANDB_RUN_ENV = "POPTRAIN_WANDB_RUN_ID"


def init_wandb(cfg: DictConfig) -> None:
    """Start (or resume, after a PBT restart) the W&B run that syncs this process's TensorBoard logs."""
    try:
        import wandb
    except ImportError:
        raise ConfigError(
            "wandb_activate=True needs the wandb extra: pip install 'poptrain[wandb]'"
        ) from None
    run_id = os.environ.get(WANDB_RUN_ENV) or None
    run = wandb.init(
        project=str(cfg.wandb_project),
        entity=str(cfg.wandb_entity) or None,
        group=str(cfg.wandb_group) or None,
        name=str(cfg.wandb_name) or str(cfg.task.name),
        id=run_id,
        resume="allow" if run_id else None,
        sync_tensorboard=True,
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )
    # a PBT restart (os.execv keeps the environment) resumes this same W&B run instead of starting a new one
    os.environ[WANDB_RUN_ENV] = str(run.id)
