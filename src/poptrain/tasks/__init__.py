"""Task registry: maps task names to tensor task classes (or factories).

``make_task(name, cfg, num_envs, device, seed)`` builds one; an unknown name fails with the known names.
Registering a name twice is an error (rl_games' own registries overwrite silently; ours do not).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from poptrain.errors import ConfigError

TaskFactory = Callable[..., Any]

# name -> "module:attribute" (imported lazily so optional extras cost nothing until used)
_BUILTIN: dict[str, str] = {
    "Cartpole": "poptrain.tasks.cartpole:Cartpole",
    "Pendulum": "poptrain.tasks.pendulum:Pendulum",
    "Acrobot": "poptrain.tasks.acrobot:Acrobot",
    "Gym": "poptrain.tasks.gym_adapter:GymTask",
    "Playground": "poptrain.tasks.playground:PlaygroundTask",
}
_REGISTRY: dict[str, TaskFactory] = {}


def register_task(name: str, factory: TaskFactory | str) -> None:
    """Register a task class/factory (or a lazy ``"module:attr"`` path) under ``name``."""
    if name in _REGISTRY or name in _BUILTIN:
        raise ConfigError(f"task {name!r} is already registered")
    if isinstance(factory, str):
        _BUILTIN[name] = factory
    else:
        _REGISTRY[name] = factory


def task_names() -> list[str]:
    """Every registered task name, sorted."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def get_task_factory(name: str) -> TaskFactory:
    """Return the factory registered under ``name`` or raise ConfigError listing the known names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _BUILTIN:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    module_name, attr = _BUILTIN[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    _REGISTRY[name] = factory
    return factory


def make_task(name: str, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
    """Build the task ``name`` with ``num_envs`` rows on ``device``."""
    return get_task_factory(name)(cfg=cfg, num_envs=num_envs, device=device, seed=seed)
