"""Build what a run trains: torch settings, the task, and the rl_games Runner with its observers.

The one builder behind ``python -m poptrain.train`` (train and play), ``poptrain.api.Trainer`` and the
time-sliced slots: each composes a config (``poptrain.config``), calls ``setup_torch``, then ``make_runner``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from poptrain.allocator import tune_allocator


def setup_torch(cfg: DictConfig) -> None:
    """Process-wide settings a run needs before it builds anything: allocator, threads, determinism, caches."""
    tune_allocator()
    if int(cfg.num_threads) > 0:
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.torch_deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cfg.train_dir) / ".inductor_cache"))


def rlg_params(cfg: DictConfig) -> dict[str, Any]:
    """The rl_games ``params`` dict for this run (a fresh copy: rl_games mutates what it is given)."""
    params = cast(dict[str, Any], OmegaConf.to_container(cfg.train.params, resolve=True))
    assert isinstance(params, dict)
    conf = params["config"]
    conf["train_dir"] = str(cfg.train_dir)
    conf["device"] = conf["device_name"] = str(cfg.rl_device)
    conf["env_name"] = "poptrain"
    params["seed"] = int(cfg.seed)
    params["torch_threads"] = int(cfg.num_threads)
    return params


def task_factory(cfg: DictConfig) -> Callable[[], Any]:
    """A zero-argument function that builds this run's task (called by rl_games when it needs the env)."""
    from poptrain.tasks import make_task

    task_cfg = cast(dict[str, Any], OmegaConf.to_container(cfg.task, resolve=True))
    assert isinstance(task_cfg, dict)
    name, num_envs = str(cfg.task.name), int(cfg.task.env.numEnvs)
    device, seed = str(cfg.sim_device), int(cfg.seed)
    return lambda: make_task(name, task_cfg, num_envs=num_envs, device=device, seed=seed)


def agent_state(algo: Any) -> dict[str, Any]:
    """The agent's full state as a weights-only loadable dict of CPU tensors and plain values (no env state)."""
    from poptrain.pbt.workspace import plain_state

    state = plain_state(algo.get_full_state_weights())
    state.pop("env_state", None)
    return state


def make_save_atomic(algo: Any) -> None:
    """Make rl_games' agent.save write temp-file + os.replace (its own torch.save is not atomic) with CPU
    tensors, and agent.restore load onto the agent's own device.

    rl_games saves tensors where they live and restores with a plain ``torch.load`` (no map_location): a
    checkpoint written on ``cuda`` then fails to load on a machine without CUDA ("Attempting to deserialize
    object on a CUDA device"), and one written on ``cuda:1`` lands on GPU 1 (or fails with "invalid device
    ordinal" where CUDA_VISIBLE_DEVICES pins one GPU). Saving CPU tensors makes every checkpoint portable (the
    device-to-host copy is one per save, ~100 KiB for the 32-32 MLPs here); restoring with
    ``map_location=<agent device>`` also reads files written elsewhere (rl_games', IsaacGymEnvs').
    """
    from poptrain.checkpoints import atomic_torch_save, load_checkpoint_file

    def save(fn: str) -> None:
        atomic_torch_save(agent_state(algo), fn + ".pth")

    def restore(fn: str, set_epoch: bool = True) -> None:
        state = load_checkpoint_file(fn, map_location=str(algo.ppo_device))
        state["model"] = {k.replace("_orig_mod.", ""): v for k, v in state["model"].items()}
        algo.set_full_state_weights(state, set_epoch=set_epoch)

    algo.save = save
    algo.restore = restore


class AtomicSaveObserver:
    """Hooks into after_init to make the agent's checkpoint writes atomic and portable (see make_save_atomic)."""

    def after_init(self, algo: Any) -> None:
        make_save_atomic(algo)


def make_runner(cfg: DictConfig, observers: Sequence[Any] = (), params: dict[str, Any] | None = None) -> Any:
    """An rl_games Runner loaded with this run's params (``params``: a caller-adjusted ``rlg_params(cfg)``), whose
    env name builds this run's task and whose agent gets ``observers`` (after AtomicSaveObserver) and atomic,
    portable checkpoint writes. ``runner.algo_observer`` is the MultiObserver (its ``algo`` after init)."""
    from rl_games.torch_runner import Runner

    from poptrain import rlg

    rlg.set_task_factory(task_factory(cfg))
    runner = Runner(algo_observer=rlg.MultiObserver([AtomicSaveObserver(), *observers]))
    runner.load({"params": rlg_params(cfg) if params is None else params})
    return runner
