"""The public Python API: compose a config, build a trainer, train N epochs, read the objective, change live
hyperparameters, save and load. For notebooks and other tuners (Optuna, Ray Tune, your own loop)::

    from poptrain import api

    cfg = api.compose("task=Pendulum", "num_envs=256", "train.params.config.gamma=0.95")
    with api.Trainer(cfg) as trainer:
        trainer.train(epochs=10)
        print(trainer.objective())                      # WindowStats(mean, se, n, binomial)
        trainer.set_params({"train.params.config.entropy_coef": 0.01})   # live: takes effect next epoch
        path = trainer.save("pendulum.pth")
        trainer.train(epochs=10)
        trainer.load(path)                              # weights, optimizer and normaliser back

``compose`` is ``poptrain.config.compose``: the same checks, Hydra composition and ``prepare`` step as
``python -m poptrain.train`` (same overrides, same errors); ``Trainer`` builds task and agent with
``poptrain.build`` as the CLI does.
``Trainer.train`` runs rl_games' own ``train_epoch`` and the same per-epoch bookkeeping as rl_games' ``train()``
loop (frame counter, TensorBoard stats, the observers' ``after_print_stats``), ``epochs`` at a time; it does not
end at ``max_epochs`` (the caller decides). The objective is what PBT ranks by: the task's ``true_objective``
when it publishes one, else the episode return, over the last ``max(100, num_envs)`` finished episodes, with
its standard error (``poptrain.pbt.noise.window_stats``). Parameters that can change live are those of
``poptrain.pbt.live``; any other key needs a new ``Trainer`` built from a composed config. ``get_params`` and
``set_params`` work on any rl_games agent: the PBT observer changes its member's live hyperparameters through them.

``poptrain train`` (``poptrain.train.run_training``) keeps rl_games' own loop: its PBT observer restarts the
process with os.execv, which a library call must not do.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from poptrain.build import agent_state, make_runner, setup_torch
from poptrain.config import compose
from poptrain.errors import ConfigError
from poptrain.pbt import live
from poptrain.pbt.noise import WindowStats, window_stats

__all__ = ["Trainer", "WindowStats", "compose", "get_params", "live_keys", "set_params"]

DEFAULT_WINDOW = 100  # finished episodes, at least num_envs (as the PBT observer's objective window)


def live_keys(agent: Any) -> list[str]:
    """Every key that can change in this running agent: PPO keys its schedule leaves alone, and the keys its task
    declares live (``task.env.*``)."""
    task_keys = [live.TASK_PREFIX + k for k in getattr(live.task_of(agent), "live_params", {})]
    return sorted(k for k in [*live.LIVE_KEYS, *task_keys] if live.is_live(k, agent))


def get_params(agent: Any, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Current values of live hyperparameters as the running ``agent`` (and its task) use them (full dotted keys;
    default: every live key). ConfigError naming any key that is not live in this agent."""
    wanted = list(keys) if keys is not None else live_keys(agent)
    unknown = [k for k in wanted if not live.is_live(k, agent)]
    if unknown:
        raise ConfigError(f"not live hyperparameters here: {unknown} (live: {', '.join(live_keys(agent))})")
    return live.read_live(agent, wanted)


def set_params(agent: Any, params: Mapping[str, Any]) -> None:
    """Change live hyperparameters in the running ``agent`` (effective from its next epoch / env step). Checks
    every key first: ConfigError naming the keys that cannot change live, and nothing changed."""
    not_live = [k for k in params if not live.is_live(k, agent)]
    if not_live:
        raise ConfigError(
            f"cannot change {not_live} in a running agent (live here: {', '.join(live_keys(agent))}); "
            "compose a new config and build a new Trainer"
        )
    live.apply_live(agent, params)


class _ObjectiveWindow:
    """An rl_games observer keeping the last finished episodes' objective values (see the module docstring)."""

    def __init__(self, window: int):
        self.window: deque[float] = deque(maxlen=window)
        self.algo: Any = None

    def after_init(self, algo: Any) -> None:
        self.algo = algo
        num_envs = int(getattr(algo, "num_actors", 0) or 0)
        if num_envs > (self.window.maxlen or 0):
            self.window = deque(self.window, maxlen=num_envs)

    def process_infos(self, infos: Any, done_indices: torch.Tensor) -> None:
        if not done_indices.numel():
            return
        ids = done_indices.reshape(-1)
        if isinstance(infos, Mapping) and "true_objective" in infos:
            values = torch.as_tensor(infos["true_objective"]).reshape(-1)
            values = values.expand(ids.numel()) if values.numel() == 1 else values.to(ids.device)[ids]
        else:
            values = self.algo.current_rewards[ids, 0]
        self.window.extend(v for v in values.detach().float().cpu().tolist() if math.isfinite(v))


class Trainer:
    """One task + one rl_games agent, trained ``epochs`` at a time (see the module docstring)."""

    def __init__(self, cfg: DictConfig, observers: Sequence[Any] = ()):
        if cfg.get("pbt") and cfg.pbt.get("enabled", False):
            raise ConfigError(
                "api.Trainer runs one agent without the PBT observer (it would restart the process); "
                "compose with pbt=no_pbt, or launch a population with poptrain-launch"
            )
        setup_torch(cfg)
        self.cfg = cfg
        self._window = _ObjectiveWindow(DEFAULT_WINDOW)
        runner = make_runner(
            cfg, [self._window, *observers]
        )  # the CLI's builder: atomic, portable saves included
        self._observer = runner.algo_observer
        self.agent: Any = runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params)
        if cfg.checkpoint:
            self.load(str(cfg.checkpoint))
        self._started = False
        self.total_time = 0.0

    # ---- training ------------------------------------------------------------------------------------
    def train(self, epochs: int) -> WindowStats:
        """Train ``epochs`` more epochs; return the objective window's statistics afterwards."""
        if int(epochs) < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        agent = self.agent
        if not self._started:  # what rl_games' train() does once before its loop
            agent.init_tensors()
            agent.obs = agent.env_reset()
            agent.curr_frames = agent.batch_size_envs
            self._started = True
        for _ in range(int(epochs)):
            epoch_num = agent.update_epoch()
            result = agent.train_epoch()
            # discrete agents return 10 values, continuous 11 (b_losses after c_losses): name both ends
            step_time, play_time, update_time, sum_time, a_losses, c_losses = result[:6]
            entropies, kls, last_lr, lr_mul = result[-4:]
            agent.dataset.update_values_dict(None)
            self.total_time += sum_time
            agent.frame += agent.curr_frames
            frame = agent.frame // agent.num_agents
            agent.write_stats(
                self.total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                kls, last_lr, lr_mul, frame, agent.num_agents * sum_time, agent.num_agents * play_time,
                agent.curr_frames,
            )  # fmt: skip
            self._observer.after_print_stats(frame, epoch_num, self.total_time)
        return self.objective()

    @property
    def frames(self) -> int:
        return int(self.agent.frame)

    @property
    def epoch(self) -> int:
        return int(self.agent.epoch_num)

    def objective(self) -> WindowStats:
        """Mean, standard error and size of the objective window (NaN mean before any episode finished)."""
        return window_stats(list(self._window.window))

    # ---- hyperparameters -----------------------------------------------------------------------------
    def get_params(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """Current values of live hyperparameters (full dotted keys; default: every live key): ``get_params``."""
        return get_params(self.agent, keys)

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Change live hyperparameters in the running agent (effective from the next epoch): ``set_params``."""
        set_params(self.agent, params)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write weights, optimizer, normaliser and counters atomically; return the path."""
        from poptrain.checkpoints import atomic_torch_save

        return atomic_torch_save(agent_state(self.agent), Path(path))

    def load(self, path: str | Path) -> None:
        """Load a checkpoint written by ``save`` or by training (rl_games format), counters included."""
        from poptrain.checkpoints import check_model_compat, load_checkpoint_file

        state = load_checkpoint_file(path)
        check_model_compat(state, self.agent.model, str(path))
        self.agent.set_full_state_weights(state, set_epoch=True)

    # ---- lifetime ------------------------------------------------------------------------------------
    def close(self) -> None:
        env = getattr(self.agent, "vec_env", None)
        if env is not None:
            env.close()
        writer = getattr(self.agent, "writer", None)
        if writer is not None:
            writer.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
