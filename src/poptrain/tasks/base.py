"""The tensor task contract: every env of a batch is a row of a tensor.

A task owns a batch of ``num_envs`` environments that live as rows of tensors on one device:

- ``obs_buf``      ``[num_envs, num_obs]`` float32 observations,
- ``rew_buf``      ``[num_envs]`` float32 rewards of the last step,
- ``reset_buf``    ``[num_envs]`` int64, 1 where the episode ended on the last step,
- ``progress_buf`` ``[num_envs]`` int64, steps taken in the current episode,
- ``extras``       dict of per-env tensors (``time_outs``; optional ``true_objective``).

``step(actions)`` advances every env by one step and returns ``(obs_dict, rew, done, extras)`` with
``obs_dict = {"obs": obs_buf}``. Envs that finished are reset *in place* before ``step`` returns, so the
returned observation of a done row is already the first observation of its next episode (the
IsaacGymEnvs convention that rl_games expects). Subclasses implement three tensor functions and never
loop over envs in Python.

Live parameters: a task lists in ``live_params`` the ``task.env`` keys that may change while it runs, each
with how the new value takes effect (:class:`LiveParam`). ``set_live({key: value})`` applies new values to
every env at once; the next ``step`` already uses them. The PBT engine (``poptrain.pbt.live``) treats these
keys like live agent hyperparameters: a change of only live keys is a hot swap, not a process restart.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch


@dataclass(frozen=True)
class TaskSpec:
    """Static description of a task's spaces."""

    num_obs: int
    num_actions: int
    action_low: float = -1.0
    action_high: float = 1.0
    max_episode_length: int = 500


@dataclass(frozen=True)
class LiveParam:
    """How one ``task.env`` parameter changes in a running task (an entry of ``VecTask.live_params``).

    The value is written to the attribute ``attr`` (a Python float the step reads every call). Then, when
    ``recompute``, the task's ``_recompute_live()`` rebuilds the constants derived from it (a cached
    quotient, a buffer filled in place); when ``reset``, every env starts a new episode, for a value under
    which the current states are no longer valid. Neither flag: the next step reads the new value directly.
    """

    attr: str  # the task attribute that holds the value
    recompute: bool = False  # derived constants must be rebuilt (``_recompute_live``)
    reset: bool = False  # every env must restart its episode after the change
    min: float = -math.inf  # valid range, inclusive (a value outside is a ConfigError)
    max: float = math.inf


class LiveParamsMixin:
    """``live_params`` and ``set_live`` for any task (VecTask and the tasks that implement the contract directly)."""

    #: ``task.env`` keys that may change while the task runs (see :class:`LiveParam`); none by default.
    live_params: ClassVar[Mapping[str, LiveParam]] = {}

    def reset(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def live_values(self) -> dict[str, float]:
        """Current value of every live parameter, by ``task.env`` key."""
        return {key: float(getattr(self, p.attr)) for key, p in self.live_params.items()}

    def set_live(self, values: Mapping[str, Any]) -> None:
        """Apply new values of live ``task.env`` keys to every env at once; the next step uses them.

        Every key and value is checked before anything changes: an unknown key or a value outside the
        declared range raises ConfigError naming it and what is valid, and leaves the task as it was.
        """
        from poptrain.errors import ConfigError

        problems: list[str] = []
        checked: dict[str, float] = {}
        for key, raw in values.items():
            param = self.live_params.get(key)
            if param is None:
                problems.append(
                    f"task.env.{key} cannot change while {type(self).__name__} runs "
                    f"(live: {sorted(self.live_params) or 'none'})"
                )
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                problems.append(f"task.env.{key}={raw!r} is not a number")
                continue
            if not (param.min <= value <= param.max):  # also refuses NaN
                problems.append(f"task.env.{key}={raw!r} is outside [{param.min}, {param.max}]")
                continue
            checked[key] = value
        if problems:
            raise ConfigError("; ".join(problems))
        for key, value in checked.items():
            setattr(self, self.live_params[key].attr, value)
        changed = [self.live_params[k] for k in checked]
        if any(p.recompute for p in changed):
            self._recompute_live()
        if any(p.reset for p in changed):
            # In place: rl_games holds obs_buf itself as its current observation, so the new first
            # observations are what the next action is computed from.
            self.reset()

    def _recompute_live(self) -> None:  # noqa: B027 (optional hook)
        """Rebuild constants derived from live parameters (tasks with ``recompute`` parameters override it)."""


class VecTask(LiveParamsMixin, ABC):
    """Base class of built-in tensor tasks (see the module docstring for the contract)."""

    spec: TaskSpec
    #: Whether the task publishes ``extras["true_objective"]`` per env (read by PBT).
    publishes_true_objective: bool = False

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        if int(num_envs) <= 0:
            from poptrain.errors import ConfigError

            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.cfg = dict(cfg)
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed) & 0xFFFF_FFFF)
        n, d = self.num_envs, self.device
        self.obs_buf = torch.zeros(n, self.spec.num_obs, device=d)
        self.rew_buf = torch.zeros(n, device=d)
        self.reset_buf = torch.ones(n, dtype=torch.long, device=d)
        self.progress_buf = torch.zeros(n, dtype=torch.long, device=d)
        self.time_out_buf = torch.zeros(n, dtype=torch.bool, device=d)
        # Buffers are updated in place every step (like obs_buf), so the dict never changes shape.
        self.extras: dict[str, torch.Tensor] = {"time_outs": self.time_out_buf}
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.spec.num_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Box(
            self.spec.action_low, self.spec.action_high, (self.spec.num_actions,), dtype=np.float32
        )
        self._allocate_state()
        # env.spreadInitialProgress (issue 14): start each row's step counter at U{0..max_episode_length-1} on
        # reset(), as IsaacGymEnvs tasks randomize progress_buf, so time-limited episodes do not all end together.
        env = self.cfg.get("env", self.cfg)
        self.spread_initial_progress = (
            bool(env.get("spreadInitialProgress", False)) if isinstance(env, dict) else False
        )

    # ---- what a task implements -------------------------------------------------------------------
    @abstractmethod
    def _allocate_state(self) -> None:
        """Create the per-env state tensors (called once from __init__)."""

    @abstractmethod
    def _reset_rows(self, env_ids: torch.Tensor) -> None:
        """Reset the state of the rows ``env_ids`` in place (random initial state from self.generator)."""

    @abstractmethod
    def _physics_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance every env one step; return ``(reward [n], terminated [n] bool)``."""

    @abstractmethod
    def _observe(self) -> torch.Tensor:
        """Return the observation of every env ``[n, num_obs]``."""

    # ---- the contract ----------------------------------------------------------------------------
    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) samples from the task's own generator (seeded, device-local)."""
        return torch.rand(*shape, generator=self.generator, device=self.device)

    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env and return the first observation dict."""
        all_ids = torch.arange(self.num_envs, device=self.device)
        self._reset_rows(all_ids)
        self.progress_buf.zero_()
        if self.spread_initial_progress:
            high = max(1, self.spec.max_episode_length)
            self.progress_buf.copy_(
                torch.randint(0, high, (self.num_envs,), generator=self.generator, device=self.device)
            )
        self.reset_buf.zero_()
        self.obs_buf.copy_(self._observe())
        return {"obs": self.obs_buf}

    def step(self, actions: torch.Tensor):
        """Step every env; reset finished rows in place; return ``(obs_dict, rew, done, extras)``."""
        # Few, mostly in-place tensor ops: at 1,024 envs on a CPU the per-op overhead, not the math, is the cost.
        actions = actions.to(self.device, torch.float32).reshape(self.num_envs, self.spec.num_actions)
        actions = actions.clamp(self.spec.action_low, self.spec.action_high)
        reward, terminated = self._physics_step(actions)
        self.progress_buf.add_(1)
        torch.ge(self.progress_buf, self.spec.max_episode_length, out=self.time_out_buf)
        self.time_out_buf.logical_and_(terminated.logical_not())
        done = terminated.logical_or(self.time_out_buf)
        self.rew_buf.copy_(reward)
        self.reset_buf.copy_(done)
        self._publish_extras(done)
        done_ids = done.nonzero(as_tuple=False).squeeze(-1)
        if done_ids.numel() > 0:
            self._reset_rows(done_ids)
            self.progress_buf.masked_fill_(done, 0)
        self.obs_buf.copy_(self._observe())
        return {"obs": self.obs_buf}, self.rew_buf, self.reset_buf, self.extras

    def _publish_extras(self, done: torch.Tensor) -> None:  # noqa: B027 (optional hook)
        """Hook for tasks that publish per-env extras (e.g. ``true_objective``) before rows reset."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources (nothing for pure tensor tasks)."""
