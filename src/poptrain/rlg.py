"""Glue between poptrain tensor tasks and rl_games.

rl_games finds environments through two global registries (``env_configurations`` and ``vecenv``).
We register one name, ``poptrain``, whose creator builds the task that ``set_task_factory`` chose:
observations, rewards and dones stay torch tensors on the task's device (no numpy round trips), as
IsaacGymEnvs does with ``rlgpu``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rl_games.common import env_configurations, vecenv
from rl_games.common.algo_observer import AlgoObserver
from rl_games.common.ivecenv import IVecEnv

log = logging.getLogger(__name__)

ENV_NAME = "poptrain"
_task_factory: Callable[[], Any] | None = None


class TaskVecEnv(IVecEnv):
    """rl_games vecenv over one poptrain tensor task (a VecTask or anything with its contract)."""

    def __init__(self, task: Any):
        self.task = task

    def step(self, actions):
        return self.task.step(actions)

    def reset(self):
        return self.task.reset()

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> dict[str, Any]:
        return {
            "action_space": self.task.action_space,
            "observation_space": self.task.observation_space,
            "agents": 1,
            "value_size": 1,
        }

    def close(self) -> None:
        self.task.close()


def set_task_factory(factory: Callable[[], Any]) -> None:
    """Choose what the ``poptrain`` env name builds (called by train.py before the Runner starts)."""
    global _task_factory
    _task_factory = factory
    _register_once()


def _create_vecenv(config_name: str, num_actors: int, **kwargs: Any) -> TaskVecEnv:
    if _task_factory is None:
        raise RuntimeError("poptrain.rlg.set_task_factory() was not called before rl_games built its env")
    return TaskVecEnv(_task_factory())


def _register_once() -> None:
    if ENV_NAME in env_configurations.configurations:
        return
    vecenv.register("POPTRAIN", _create_vecenv)
    env_configurations.register(
        ENV_NAME, {"vecenv_type": "POPTRAIN", "env_creator": lambda **kwargs: _create_vecenv(ENV_NAME, 0)}
    )


class MultiObserver(AlgoObserver):
    """Fans every rl_games observer hook out to several observers; keeps the algo handle.

    rl_games' DefaultAlgoObserver is deliberately not included: it copies ``done_indices`` to numpy and
    loops over them in Python every env step only to look for ``scores``/``battle_won`` keys that our
    tasks never publish (measurable at 1,024 envs; see benchmarks/RESULTS.md).
    """

    def __init__(self, observers: list[AlgoObserver] | None = None):
        super().__init__()
        self.observers: list[AlgoObserver] = list(observers or [])
        self.algo: Any = None

    def _call(self, name: str, *args: Any) -> None:
        for obs in self.observers:
            hook = getattr(obs, name, None)
            if hook is not None:
                hook(*args)

    def before_init(self, base_name, config, experiment_name):
        self._call("before_init", base_name, config, experiment_name)

    def after_init(self, algo):
        self.algo = algo
        self._call("after_init", algo)

    def process_infos(self, infos, done_indices):
        self._call("process_infos", infos, done_indices)

    def after_steps(self):
        self._call("after_steps")

    def after_clear_stats(self):
        self._call("after_clear_stats")

    def after_print_stats(self, frame, epoch_num, total_time):
        self._call("after_print_stats", frame, epoch_num, total_time)
