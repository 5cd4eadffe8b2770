"""Run any Gymnasium environment as a poptrain task: ``task=Gym task.env.id=<id>``.

The batch is a ``gymnasium.vector`` Sync (default) or Async vector env of ``numEnvs`` copies of
``gymnasium.make(id, **kwargs)``. Every step converts the numpy results into torch tensors on the task
device once and follows the tensor-task contract of :mod:`poptrain.tasks.base`:
``step(actions) -> ({"obs": obs_buf}, rew_buf, reset_buf, extras)`` with ``extras["time_outs"]``.

**Autoreset.** Gymnasium 1.x vector envs autoreset in *next-step* mode by default: the step that ends an
episode returns the terminal observation, and the *following* ``step`` ignores that row's action, resets it
and returns reward 0 and done False. Fed to PPO, that extra step is a fake transition (an action with no
effect, a zero reward, a "next observation" from another episode). We therefore build the vector env in
**same-step** mode (``autoreset_mode=AutoresetMode.SAME_STEP``, gymnasium >= 1.1; gymnasium 0.29's vector
envs behave this way natively): the step that ends an episode already returns the first observation of the
next one, which is exactly the contract rl_games expects from IsaacGym-style tasks. The true terminal
observation is dropped (rl_games bootstraps time-outs from the value of the pre-step observation). A vector
env that reports next-step mode anyway is refused with a ConfigError rather than trained on wrongly.

Spaces: observations must be a ``Box`` (flattened to ``[num_envs, prod(shape)]`` float32). Actions may be a
``Box`` (use ``train=GymPPO``; rl_games rescales its [-1, 1] outputs to the bounds) or ``Discrete`` (use
``train=GymDiscretePPO``). MuJoCo ids (``HalfCheetah-v5`` ...) need the ``mujoco`` extra.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from poptrain.errors import ConfigError
from poptrain.tasks.base import TaskSpec

log = logging.getLogger(__name__)

VECTORIZATION = ("sync", "async")


def _env_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    env = cfg.get("env", cfg)
    if not env.get("id"):
        raise ConfigError("task=Gym needs task.env.id=<gymnasium id>, e.g. task.env.id=Pendulum-v1")
    return env


def make_single_env(env_id: str, kwargs: dict[str, Any] | None = None) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with a ConfigError (not a traceback) for an unknown id."""
    try:
        return gym.make(env_id, **(kwargs or {}))
    except gym.error.Error as exc:  # NameNotFound, VersionNotFound, DependencyNotInstalled, ...
        hint = " (MuJoCo ids need: pip install 'poptrain[mujoco]')" if "mujoco" in str(exc).lower() else ""
        raise ConfigError(f"task.env.id={env_id!r}: {exc}{hint}") from None


def check_train_config(task_cfg: dict[str, Any], train_params: dict[str, Any]) -> None:
    """Refuse a train config whose action type does not match the env's (before rl_games starts)."""
    env_cfg = _env_cfg(task_cfg)
    probe = make_single_env(str(env_cfg["id"]), dict(env_cfg.get("kwargs") or {}))
    try:
        algo = str(train_params.get("algo", {}).get("name", ""))
        discrete = isinstance(probe.action_space, gym.spaces.Discrete)
        if discrete and algo != "a2c_discrete":
            raise ConfigError(
                f"{env_cfg['id']} has a Discrete action space but train algo is {algo!r}; use train=GymDiscretePPO"
            )
        if not discrete and algo == "a2c_discrete":
            raise ConfigError(f"{env_cfg['id']} has a continuous action space; use train=GymPPO")
    finally:
        probe.close()


class GymTask:
    """A Gymnasium vector env behind the poptrain tensor-task contract (see the module docstring)."""

    publishes_true_objective = False
    check_train_config = staticmethod(check_train_config)

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        if int(num_envs) <= 0:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        env_cfg = _env_cfg(cfg)
        self.env_id = str(env_cfg["id"])
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.seed = int(seed) & 0x7FFF_FFFF
        kwargs = dict(env_cfg.get("kwargs") or {})
        mode = str(env_cfg.get("vectorization", "sync"))
        if mode not in VECTORIZATION:
            raise ConfigError(f"task.env.vectorization={mode!r}; valid: {', '.join(VECTORIZATION)}")

        probe = make_single_env(self.env_id, kwargs)
        obs_space, act_space = probe.observation_space, probe.action_space
        max_steps = probe.spec.max_episode_steps if probe.spec is not None else None
        probe.close()
        if not isinstance(obs_space, gym.spaces.Box):
            raise ConfigError(
                f"{self.env_id}: observation space {obs_space} is not a Box; only Box is supported"
            )
        if not isinstance(act_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise ConfigError(f"{self.env_id}: action space {act_space} is neither Box nor Discrete")
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        num_obs = int(np.prod(obs_space.shape))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (num_obs,), dtype=np.float32)
        self.action_space: Any = act_space
        self.action_shape: tuple[int, ...] = ()
        if isinstance(act_space, gym.spaces.Discrete):
            num_actions, low, high = 1, 0.0, float(act_space.n - 1)
        else:
            self.action_shape = tuple(act_space.shape)
            num_actions = int(np.prod(self.action_shape))
            low, high = float(np.min(act_space.low)), float(np.max(act_space.high))
        self.spec = TaskSpec(num_obs, num_actions, low, high, int(max_steps) if max_steps else 0)

        self.env = self._make_vector_env(mode, kwargs)
        n, d = self.num_envs, self.device
        self.obs_buf = torch.zeros(n, num_obs, device=d)
        self.rew_buf = torch.zeros(n, device=d)
        self.reset_buf = torch.ones(n, dtype=torch.long, device=d)
        self.progress_buf = torch.zeros(n, dtype=torch.long, device=d)
        self.time_out_buf = torch.zeros(n, dtype=torch.bool, device=d)
        self.extras: dict[str, torch.Tensor] = {}
        self._seeded = False

    def _make_vector_env(self, mode: str, kwargs: dict[str, Any]) -> gym.vector.VectorEnv:
        env_id = self.env_id
        fns = [lambda: gym.make(env_id, **kwargs) for _ in range(self.num_envs)]
        cls = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
        vkw: dict[str, Any] = {}
        autoreset_mode = getattr(gym.vector, "AutoresetMode", None)
        if autoreset_mode is not None and "autoreset_mode" in inspect.signature(cls.__init__).parameters:
            vkw["autoreset_mode"] = autoreset_mode.SAME_STEP
        env = cls(fns, **vkw)
        reported = env.metadata.get("autoreset_mode")
        if autoreset_mode is not None and reported is not None and reported != autoreset_mode.SAME_STEP:
            env.close()
            raise ConfigError(f"{env_id}: vector env autoresets in {reported} mode; poptrain needs SAME_STEP")
        return env

    # ---- the contract ----------------------------------------------------------------------------
    def _to_obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(
            np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1), device=self.device
        )

    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env (seeded with ``seed`` on the first call: sub-env i gets seed + i)."""
        obs, _ = self.env.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        self.progress_buf.zero_()
        self.reset_buf.zero_()
        self.obs_buf.copy_(self._to_obs(obs))
        return {"obs": self.obs_buf}

    def step(self, actions: torch.Tensor):
        """Step every env; finished rows come back already reset (same-step autoreset)."""
        if self.discrete:
            act = actions.reshape(self.num_envs).to("cpu", torch.int64).numpy()
        else:
            act = actions.reshape(self.num_envs, -1).to("cpu", torch.float32).numpy()
            act = act.reshape((self.num_envs, *self.action_shape))
        obs, rew, terminated, truncated, _ = self.env.step(act)
        term = torch.as_tensor(np.asarray(terminated, dtype=bool), device=self.device)
        trunc = torch.as_tensor(np.asarray(truncated, dtype=bool), device=self.device)
        done = term | trunc
        self.obs_buf.copy_(self._to_obs(obs))
        self.rew_buf.copy_(torch.as_tensor(np.asarray(rew, dtype=np.float32), device=self.device))
        self.reset_buf.copy_(done.long())
        self.progress_buf.add_(1)
        self.progress_buf.masked_fill_(done, 0)
        self.time_out_buf = trunc & ~term
        self.extras["time_outs"] = self.time_out_buf
        return {"obs": self.obs_buf}, self.rew_buf, self.reset_buf, self.extras

    def close(self) -> None:
        self.env.close()


__all__ = ["GymTask", "check_train_config", "make_single_env"]
