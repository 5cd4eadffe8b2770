"""Which hyperparameters can change inside a running rl_games agent, and how to change them.

A PBT exploit or mutation whose changed parameters are all live is applied in process (a hot swap: no
restart, the env keeps running). Anything else (network sizes, num_envs, horizon, structural task
parameters, ...) needs a restart (os.execv) with the new value as a Hydra override.

Live task parameters (``task.env.<name>``): the ones the running task declares in its ``live_params``
(``poptrain.tasks.base.LiveParam``; e.g. Cartpole ``maxEffort`` and reward weights, Acrobot ``maxTorque``,
``rewardScale``, ``successBonus``). They are applied with the task's ``set_live`` to every env at once; the
next env step uses them. Whether a task key is live is a property of the running task, so it needs ``algo``.

Live parameters (rl_games PPO, ``train.params.config.<name>``):

| key | applied to |
|---|---|
| learning_rate | ``algo.last_lr`` and every optimizer param group (any schedule except ``linear``, whose scheduler owns lr) |
| entropy_coef | ``algo.entropy_coef`` (not live when ``schedule_entropy`` is on) |
| critic_coef, e_clip, grad_norm, bounds_loss_coef, gamma, tau | the attribute of the same name |
| mini_epochs | ``algo.mini_epochs_num`` (int) |
| kl_threshold | ``algo.kl_threshold`` and the adaptive scheduler (adaptive schedule only) |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "train.params.config."
TASK_PREFIX = "task.env."

_ATTR = {
    "entropy_coef": "entropy_coef",
    "critic_coef": "critic_coef",
    "e_clip": "e_clip",
    "grad_norm": "grad_norm",
    "bounds_loss_coef": "bounds_loss_coef",
    "gamma": "gamma",
    "tau": "tau",
    "mini_epochs": "mini_epochs_num",
}
LIVE_KEYS = frozenset(PREFIX + k for k in (*_ATTR, "learning_rate", "kl_threshold"))


def _schedule(algo: Any) -> str:
    return str(algo.config.get("lr_schedule") or "")


def task_of(algo: Any | None) -> Any | None:
    """The poptrain task an rl_games agent steps (``algo.vec_env`` is our TaskVecEnv), or None."""
    return getattr(getattr(algo, "vec_env", None), "task", None)


def is_live(key: str, algo: Any | None = None) -> bool:
    """True when ``key`` can be changed in a running agent (``algo`` refines schedule-dependent keys).

    A ``task.env.*`` key is live only when the running task (``algo``'s env) declares it.
    """
    if key.startswith(TASK_PREFIX):
        return key[len(TASK_PREFIX) :] in getattr(task_of(algo), "live_params", {})
    if key not in LIVE_KEYS:
        return False
    if algo is None:
        return True
    name = key[len(PREFIX) :]
    if name == "learning_rate":
        return _schedule(algo) != "linear"
    if name == "kl_threshold":
        return _schedule(algo) == "adaptive"
    if name == "entropy_coef":
        return not (algo.config.get("schedule_entropy", False) and _schedule(algo) == "linear")
    return True


def all_live(keys: list[str] | set[str], algo: Any | None = None) -> bool:
    """True when every key in ``keys`` is live (an empty set is trivially live)."""
    return all(is_live(k, algo) for k in keys)


def read_live(algo: Any, keys: list[str]) -> dict[str, Any]:
    """Current values of live ``keys`` as the running agent sees them."""
    out: dict[str, Any] = {}
    task = task_of(algo)
    for key in keys:
        if key.startswith(TASK_PREFIX) and task is not None:
            values = task.live_values()
            if key[len(TASK_PREFIX) :] in values:
                out[key] = values[key[len(TASK_PREFIX) :]]
            continue
        name = key[len(PREFIX) :]
        if name == "learning_rate":
            out[key] = float(algo.last_lr)
        elif name in _ATTR:
            out[key] = getattr(algo, _ATTR[name])
        elif name == "kl_threshold":
            out[key] = float(algo.kl_threshold)
    return out


def apply_live(algo: Any, params: Mapping[str, Any]) -> None:
    """Set every key of ``params`` on the running agent; ValueError names any key that is not live."""
    not_live = [k for k in params if not is_live(k, algo)]
    if not_live:
        task_keys = sorted(TASK_PREFIX + k for k in getattr(task_of(algo), "live_params", {}))
        raise ValueError(
            f"parameters {not_live} cannot change in a running agent (live: {sorted(LIVE_KEYS) + task_keys})"
        )
    task_values = {k[len(TASK_PREFIX) :]: v for k, v in params.items() if k.startswith(TASK_PREFIX)}
    task = task_of(algo)
    if task_values and task is not None:  # is_live above guarantees a task when there are task keys
        # first: the task validates every value before changing anything (a bad one leaves agent and task as is)
        task.set_live(task_values)
    for key, value in params.items():
        if key.startswith(TASK_PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name == "learning_rate":
            algo.last_lr = float(value)
            for group in algo.optimizer.param_groups:
                group["lr"] = float(value)
        elif name == "mini_epochs":
            algo.mini_epochs_num = int(value)
        elif name == "kl_threshold":
            algo.kl_threshold = float(value)
            algo.scheduler.kl_threshold = float(value)
        else:
            setattr(algo, _ATTR[name], float(value))
