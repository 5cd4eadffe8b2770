"""Compose and check a run's config: the one path shared by ``python -m poptrain.train`` and ``poptrain.api``.

``compose(*overrides)`` = ``check_overrides`` (one ConfigError naming a bad task / key) → Hydra's compose of
``cfg/config.yaml`` → ``prepare`` (run dir, validation, seed). The CLI gets the same config from ``@hydra.main``
(it needs Hydra's own argv handling: ``--cfg job``, ``hydra.run.dir=``, and the recorded overrides a PBT restart
replays) and then runs the same ``check_overrides`` before and ``prepare`` after.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from poptrain.errors import ConfigError

CFG_DIR = Path(__file__).parent / "cfg"


def register_resolvers() -> None:
    """The IsaacGymEnvs-style resolvers our YAML uses (idempotent)."""
    resolvers: dict[str, Callable[..., Any]] = {
        "resolve_default": lambda default, arg: default if arg in ("", None) else arg,
        "eq": lambda x, y: str(x).lower() == str(y).lower(),
        "if": lambda pred, a, b: a if pred else b,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    from poptrain.pbt.params import register_config_defaults

    register_config_defaults()  # pbt/settings: every PBT default, generated from PbtSettings (pbt_default.yaml)


register_resolvers()


def _check_device(name: str, key: str) -> str:
    name = str(name)
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r} but no CUDA device is available; use {key}=cpu")
        return name
    raise ConfigError(f"{key}={name!r} is not a device; valid: cpu, cuda, cuda:N")


def validate(cfg: DictConfig) -> None:
    """Check the composed config once; report every problem together."""
    from poptrain.tasks import get_task_factory

    problems: list[str] = []
    factory = None
    try:
        factory = get_task_factory(str(cfg.task.name))
    except ConfigError as exc:
        problems.append(str(exc))
    # A task may check the train config against itself (the Gym adapter: discrete vs continuous algo).
    check = getattr(factory, "check_train_config", None)
    if check is not None:
        try:
            check(
                OmegaConf.to_container(cfg.task, resolve=True),
                OmegaConf.to_container(cfg.train.params, resolve=True),
            )
        except ConfigError as exc:
            problems.append(str(exc))
    num_envs = cfg.task.env.get("numEnvs")
    try:
        if int(num_envs) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"num_envs must be a positive integer, got {num_envs!r}")
    for key in ("rl_device", "sim_device"):
        try:
            _check_device(cfg[key], key)
        except ConfigError as exc:
            problems.append(str(exc))
    if int(cfg.num_threads) < 0:
        problems.append(f"num_threads must be >= 0 (0 = torch default), got {cfg.num_threads!r}")
    if cfg.checkpoint and not Path(str(cfg.checkpoint)).is_file():
        problems.append(
            f"checkpoint {str(cfg.checkpoint)!r} does not exist (expected a .pth file written by training)"
        )
    if cfg.test and not cfg.checkpoint:
        problems.append("test=True needs checkpoint=PATH (a .pth written by training)")
    if cfg.test and int(cfg.play_episodes) <= 0:
        problems.append(f"play_episodes must be a positive integer, got {cfg.play_episodes!r}")
    if str(cfg.get("sigma_mode", "std")) not in ("std", "rl_games"):
        problems.append(
            f"sigma_mode must be std (ours) or rl_games (IsaacGymEnvs' meaning), got {cfg.sigma_mode!r}"
        )
    if cfg.sigma not in ("", None):
        try:
            # rl_games' meaning is a log-std: any real number; ours is a std
            if float(cfg.sigma) < 0 and str(cfg.get("sigma_mode", "std")) != "rl_games":
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"sigma must be a number >= 0 (or empty for the model's own), got {cfg.sigma!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def hydra_run_dir() -> str:
    """``hydra.run.dir`` of this Hydra app ('.' outside one, and by default: cfg/config.yaml)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return str(HydraConfig.get().run.dir)
    except Exception:  # noqa: BLE001 - no Hydra context
        pass
    return "."


def resolve_run_dir(cfg: DictConfig, run_dir: str | None = None) -> None:
    """A relative ``train_dir`` lies under ``hydra.run.dir`` when one is given.

    IsaacGymEnvs runs on Hydra 1.1, whose job changes into ``hydra.run.dir``: its launcher passes
    ``hydra.run.dir=<train_dir>/<run>/<experiment>`` (``experiment_dir_arg_name="hydra.run.dir"``) and the
    runs land there. We never change the working directory (version_base 1.3); resolving the relative output
    root against the run dir puts them in the same place."""
    run_dir = hydra_run_dir() if run_dir is None else run_dir
    if run_dir not in ("", ".") and not Path(str(cfg.train_dir)).is_absolute():
        cfg.train_dir = str(Path(run_dir) / str(cfg.train_dir))


def resolve_seed(cfg: DictConfig) -> int:
    """Return the run's seed; -1 draws one (and writes it back into cfg so it is recorded)."""
    seed = int(cfg.seed)
    if seed == -1:
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
        cfg.seed = seed
    return seed


def check_overrides(overrides: list[str]) -> None:
    """Compose the config once with ``overrides``; turn Hydra's composition errors into one ConfigError.

    Hydra itself reports an unknown task / config key as a multi-line message with exit code 1; we name
    the bad value and the valid ones on one line (exit code 2, like every other bad input).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    try:
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
            compose(config_name="config", overrides=list(overrides))
    except MissingConfigException as exc:
        found = re.search(r"Could not find '([^/']+)/([^']*)'", str(exc))
        if not found:
            raise ConfigError(str(exc).splitlines()[0]) from None
        group, name = found.groups()
        options = sorted(p.stem for p in (CFG_DIR / group).glob("*.yaml"))
        what = "task" if group == "task" else f"{group} config"
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(options)}") from None
    except HydraException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        bad_key = re.match(r"Could not override '([^']+)'", first)
        if bad_key:
            raise ConfigError(
                f"unknown config key {bad_key.group(1)!r} (not in the composed config; "
                f"`python -m poptrain.train --cfg job` lists every key)"
            ) from None
        raise ConfigError(f"bad override in {' '.join(overrides)!r}: {first}") from None


def prepare(cfg: DictConfig, run_dir: str | None = None) -> DictConfig:
    """The step after Hydra's composition, for the CLI and ``compose`` alike: a relative ``train_dir`` under the
    Hydra run dir, every problem of the config reported together (ConfigError), the seed drawn when -1."""
    resolve_run_dir(cfg, run_dir)
    validate(cfg)
    resolve_seed(cfg)
    return cfg


def compose(*overrides: str) -> DictConfig:
    """The composed, validated config for ``overrides`` (``key=value`` strings, as on the command line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    check_overrides(list(overrides))  # one ConfigError naming the bad value and the valid ones
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    return prepare(cfg)
