"""MuJoCo Playground (MJX/JAX) tasks behind poptrain's tensor task contract.

    python -m poptrain.train task=Playground task.env.name=CartpoleBalance

The environment comes from Playground's registry (``mujoco_playground.registry.load``), wrapped the way
Playground trains it (``wrap_for_brax_training``: jax.vmap over ``num_envs`` worlds, episode length and
truncation, auto-reset of finished worlds), and one batched ``step`` is jit-compiled. Every output
crosses to torch with ``torch.from_dlpack`` (zero-copy: the torch tensors alias jax's buffers) and the
actions cross back zero-copy too (``jax.numpy.from_dlpack`` on CUDA; ``jax.device_put`` of the numpy view
on CPU, which jax aliases, see :func:`action_crossing`). The step's carry is donated to XLA. jax treats
its buffers as immutable, so the torch views handed out (``obs_buf``, ``rew_buf``, ``extras["time_outs"]``,
``extras["true_objective"]``) are read-only by contract: nothing here writes into them, and each ``step``
hands out fresh ones. The per-env scalars (reward, truncation, objective, done) cross as one packed
``[4, n]`` array whose rows are the contiguous views handed out; ``done`` (int64) and ``time_outs``
(bool) are device-local casts.

Conventions (Playground's): an episode ends when the task terminates it or after ``episode_length``
control steps (a truncation, reported as ``extras["time_outs"]``); the returned observation of a finished
row is already the first observation of its next episode (``full_reset=False``: Playground's cached
first state of that row; ``True``: a fresh random reset). ``extras["true_objective"]`` (when the task
YAML names one) holds, per row, the running episode total (or mean) of a reward or metric; on the step a
row finishes it is the finished episode's value, which is what PBT reads at done indices.

Offline: the dm_control-suite tasks ship their assets with the package; the robot tasks (locomotion,
manipulation) read the MuJoCo Menagerie from ``mujoco_playground/external_deps/mujoco_menagerie`` inside
the installed package (``mujoco_playground._src.mjx_env.MENAGERIE_PATH``) and git-clone it there when it
is missing. We never let that clone happen: without a checkout at that path or at
``task.env.menagerie_path`` the task fails at start-up with instructions (see docs/playground.md).

Live parameters: Playground's own config values (reward scales, ctrl_dt, ...) are read while ``step`` is
traced, so they are baked into the compiled function; changing one means a retrace and recompile (20-90 s
on CPU, see docs/playground.md), no cheaper than a restart, so none is live. The adapter's own
``reward_scale`` (a torch-side multiply of the published reward) is live.

On CPU the MJX implementation is ``impl="jax"`` (Playground's default, warp, ran ~8x slower here and
floods the log with solver warnings). Compilations are cached on disk (JAX's persistent compilation
cache, under the train dir by default) so a second process, e.g. a PBT restart, skips most of the cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from poptrain.errors import ConfigError
from poptrain.tasks.base import LiveParam, LiveParamsMixin, TaskSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'poptrain[playground]'"
IMPLS = ("auto", "jax", "warp")
REDUCTIONS = ("sum", "mean")


# ---- settings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaygroundSettings:
    """The ``task.env`` block of a Playground task YAML, validated once."""

    #: Playground registry name, e.g. CartpoleBalance, CheetahRun, Go1JoystickFlatTerrain.
    name: str
    #: MJX implementation: auto (jax on CPU; on GPU the task's own default, jax where that is warp and
    #: warp-lang is not installed), jax or warp.
    impl: str = "auto"
    #: Control steps per episode before truncation; 0 = the task's own ``episode_length``.
    episode_length: int = 0
    #: Physics control steps per agent action (rewards summed), as in Playground's training.
    action_repeat: int = 1
    #: Finished rows reset to a fresh random state (True) or to their cached first state (False).
    full_reset: bool = False
    #: Keys of a dict observation to concatenate (each must be a flat vector per env).
    obs_keys: tuple[str, ...] = ("state",)
    #: What extras["true_objective"] publishes: '' (nothing), 'reward', or a name of the task's metrics.
    true_objective: str = ""
    #: How true_objective aggregates an episode: sum or mean (per control step).
    true_objective_reduce: str = "sum"
    #: A pre-fetched MuJoCo Menagerie checkout for the robot tasks; '' = Playground's own path.
    menagerie_path: str = ""
    #: JAX persistent compilation cache folder; '' disables the cache.
    jax_cache_dir: str = ""
    #: Apply the task's domain randomizer (robot tasks that have one) across the envs.
    domain_randomization: bool = True
    #: Extra Playground config overrides (flattened dotted keys), e.g. {"ctrl_dt": 0.02}.
    config_overrides: dict[str, Any] = field(default_factory=dict)
    #: Factor on the published reward (applied in torch after the step; live: may change while running).
    reward_scale: float = 1.0

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> PlaygroundSettings:
        """Read ``cfg["env"]`` (or ``cfg`` itself), reporting every problem together."""
        env = dict(cfg.get("env", cfg))
        problems: list[str] = []
        known = set(cls.__dataclass_fields__) | {"numEnvs"}
        unknown = sorted(set(env) - known)
        if unknown:
            problems.append(f"unknown task.env keys {unknown}; valid: {sorted(known)}")
        name = str(env.get("name") or "")
        if not name:
            problems.append(
                "task.env.name is empty; set it to a Playground registry name, e.g. CartpoleBalance"
            )
        impl = str(env.get("impl", "auto"))
        if impl not in IMPLS:
            problems.append(f"task.env.impl={impl!r} is not one of {list(IMPLS)}")
        ints: dict[str, int] = {}
        for key, low in (("episode_length", 0), ("action_repeat", 1)):
            raw = env.get(key, cls.__dataclass_fields__[key].default)
            try:
                ints[key] = int(raw)
                if ints[key] < low or isinstance(raw, bool):
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"task.env.{key} must be an integer >= {low}, got {raw!r}")
        reduce = str(env.get("true_objective_reduce", "sum"))
        if reduce not in REDUCTIONS:
            problems.append(f"task.env.true_objective_reduce={reduce!r} is not one of {list(REDUCTIONS)}")
        obs_keys = env.get("obs_keys", ("state",))
        if isinstance(obs_keys, str) or not isinstance(obs_keys, Sequence) or not obs_keys:
            problems.append(f"task.env.obs_keys must be a non-empty list of keys, got {obs_keys!r}")
            obs_keys = ("state",)
        scale_raw = env.get("reward_scale", 1.0)
        try:
            reward_scale = float(scale_raw)
            if not reward_scale >= 0 or isinstance(scale_raw, bool):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"task.env.reward_scale must be a number >= 0, got {scale_raw!r}")
            reward_scale = 1.0
        overrides = env.get("config_overrides") or {}
        if not isinstance(overrides, Mapping):
            problems.append(f"task.env.config_overrides must be a mapping, got {overrides!r}")
            overrides = {}
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            name=name,
            impl=impl,
            episode_length=ints["episode_length"],
            action_repeat=ints["action_repeat"],
            full_reset=bool(env.get("full_reset", False)),
            obs_keys=tuple(str(k) for k in obs_keys),
            true_objective=str(env.get("true_objective") or ""),
            true_objective_reduce=reduce,
            menagerie_path=str(env.get("menagerie_path") or ""),
            jax_cache_dir=str(env.get("jax_cache_dir") or ""),
            domain_randomization=bool(env.get("domain_randomization", True)),
            config_overrides=dict(overrides),
            reward_scale=reward_scale,
        )


# ---- imports, registry, assets -----------------------------------------------------------------------------
def import_playground() -> tuple[Any, Any]:
    """Import jax and mujoco_playground, or raise ConfigError naming the pip command that adds them."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU with torch
    try:
        import jax
        from mujoco_playground import registry
    except ImportError as exc:
        raise ConfigError(
            f"task=Playground needs the playground extra ({exc.name or exc} is not installed): {INSTALL_HINT}"
        ) from None
    return jax, registry


def offline_task_names() -> list[str]:
    """Playground tasks whose assets ship with the package (the dm_control suite)."""
    from mujoco_playground import dm_control_suite

    return sorted(dm_control_suite.ALL_ENVS)


def menagerie_task_names() -> list[str]:
    """Playground tasks that load robot models from the MuJoCo Menagerie."""
    from mujoco_playground import locomotion, manipulation

    return sorted(set(locomotion.ALL_ENVS) | set(manipulation.ALL_ENVS))


def check_task_name(name: str) -> None:
    """Raise ConfigError for a name Playground's registry does not know (listing the offline tasks)."""
    from mujoco_playground import registry

    if name not in registry.ALL_ENVS:
        raise ConfigError(
            f"unknown Playground task {name!r}; tasks that work offline: {', '.join(offline_task_names())}; "
            f"robot tasks (need the MuJoCo Menagerie, see docs/playground.md): {', '.join(menagerie_task_names())}"
        )


def ensure_menagerie(name: str, menagerie_path: str) -> None:
    """Point Playground at a pre-fetched Menagerie for a robot task, or fail before it tries to clone one."""
    if name not in menagerie_task_names():
        return
    from etils import epath
    from mujoco_playground._src import mjx_env

    if menagerie_path:
        path = Path(menagerie_path).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"task.env.menagerie_path={menagerie_path!r} is not a directory; give a checkout of "
                f"https://github.com/google-deepmind/mujoco_menagerie (commit {mjx_env.MENAGERIE_COMMIT_SHA})"
            )
        # Every robot task reads mjx_env.MENAGERIE_PATH at load time; ensure_menagerie_exists sees it too.
        mjx_env.MENAGERIE_PATH = epath.Path(str(path.resolve()))
        return
    if not Path(str(mjx_env.MENAGERIE_PATH)).is_dir():
        raise ConfigError(
            f"Playground task {name!r} needs the MuJoCo Menagerie, which is not on this machine and is never "
            f"fetched at run time. Provide a checkout of https://github.com/google-deepmind/mujoco_menagerie "
            f"at commit {mjx_env.MENAGERIE_COMMIT_SHA} and either pass task.env.menagerie_path=/path/to/"
            f"mujoco_menagerie or place (or symlink) it at {mjx_env.MENAGERIE_PATH}. "
            f"Tasks that work offline: {', '.join(offline_task_names())}"
        )


def enable_compilation_cache(jax: Any, cache_dir: str) -> None:
    """Turn on JAX's persistent compilation cache in ``cache_dir`` (every compilation is cached)."""
    if not cache_dir:
        return
    current = jax.config.jax_compilation_cache_dir
    if current and os.path.abspath(current) != os.path.abspath(cache_dir):
        log.info("JAX compilation cache already set to %s; keeping it (asked for %s)", current, cache_dir)
        return
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def jax_device(jax: Any, device: torch.device) -> Any:
    """The jax device that matches the torch device (jax and torch must share memory for dlpack)."""
    if device.type == "cpu":
        return jax.devices("cpu")[0]
    if device.type == "cuda":
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        index = device.index or 0
        if index >= len(gpus):
            raise ConfigError(
                f"sim_device={device} but jax sees {len(gpus)} GPU(s); install jax with CUDA "
                "(pip install 'jax[cuda12]') or use sim_device=cpu rl_device=cpu"
            )
        return gpus[index]
    raise ConfigError(f"sim_device={device} is not supported by the Playground adapter; valid: cpu, cuda[:N]")


def resolve_impl(impl: str, device_type: str, task_default: str, have_warp: bool) -> str:
    """The MJX implementation to ask Playground for; '' keeps the task's own default.

    ``auto``: jax on CPU (warp ran ~8x slower there). On GPU the task's default, except that a task defaulting
    to warp gets jax when warp-lang is not installed (the dm_control tasks default to warp in playground 0.2.0;
    warp-lang is ~390 MB installed, too big for some GPU images, and MJX cannot run warp without it).
    """
    if impl != "auto":
        return impl
    if device_type == "cpu":
        return "jax"
    if task_default == "warp" and not have_warp:
        return "jax"
    return ""


def action_crossing(device: torch.device) -> str:
    """How actions cross from torch to jax on ``device``: zero-copy either way, cheapest first.

    CPU: "device_put" of the tensor's numpy view (jax aliases it; host memory is the CPU device's memory).
    Anything else (CUDA): "dlpack" (``jax.numpy.from_dlpack``); a numpy view there would be a host round trip.
    """
    return "device_put" if device.type == "cpu" else "dlpack"


# ---- observations -------------------------------------------------------------------------------------------
def flat_obs_size(obs_size: Any, obs_keys: Sequence[str]) -> int:
    """Width of the flattened observation for Playground's ``observation_size`` (an int or a dict).

    A dict observation keeps only ``obs_keys``, each of which must be a flat vector per env; a missing key
    or an image-like entry (e.g. pixels) is refused with the available keys and their shapes.
    """
    if not isinstance(obs_size, Mapping):
        return int(obs_size)
    shapes = {k: (tuple(v) if isinstance(v, Sequence) else (int(v),)) for k, v in obs_size.items()}
    available = ", ".join(f"{k}{list(s)}" for k, s in shapes.items())
    total = 0
    for key in obs_keys:
        if key not in shapes:
            raise ConfigError(
                f"task.env.obs_keys names {key!r}, which this task's dict observation lacks; available: {available}"
            )
        if len(shapes[key]) != 1:
            raise ConfigError(
                f"observation {key!r} has shape {list(shapes[key])}; only flat vectors can be fed to the MLP "
                f"policy (image observations are not supported); choose task.env.obs_keys among: {available}"
            )
        total += shapes[key][0]
    return total


def flatten_obs(obs: Any, obs_keys: Sequence[str]) -> Any:
    """``[n, d]`` float32 observation (jax): the array itself, or the concatenation of ``obs_keys``."""
    import jax.numpy as jnp

    if isinstance(obs, Mapping):
        return jnp.concatenate([obs[k].astype(jnp.float32) for k in obs_keys], axis=-1)
    return obs.astype(jnp.float32)


# ---- the task -------------------------------------------------------------------------------------------------
class PlaygroundTask(LiveParamsMixin):
    """A batch of ``num_envs`` Playground worlds stepped by one jit-compiled, vmapped function.

    Implements the tensor task contract of :mod:`poptrain.tasks.base` directly (not through VecTask,
    whose ``step`` writes into its buffers in place, which would write into jax-owned memory here).
    """

    publishes_true_objective: bool
    live_params = {"reward_scale": LiveParam("reward_scale", min=0.0)}

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        if int(num_envs) <= 0:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.settings = settings = PlaygroundSettings.from_cfg(cfg)
        jax, registry = import_playground()
        check_task_name(settings.name)
        ensure_menagerie(settings.name, settings.menagerie_path)
        enable_compilation_cache(jax, settings.jax_cache_dir)
        self.cfg = dict(cfg)
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.jax_device = jax_device(jax, self.device)
        self.publishes_true_objective = bool(settings.true_objective)
        self.reward_scale = settings.reward_scale

        with jax.default_device(self.jax_device):
            self.env = self._load_env(registry, settings)
            self.raw_env = self.env.unwrapped
            num_obs = flat_obs_size(self.env.observation_size, settings.obs_keys)
            self.episode_length = int(settings.episode_length or self.raw_env._config.episode_length)
            self.spec = TaskSpec(
                num_obs=num_obs, num_actions=int(self.env.action_size), max_episode_length=self.episode_length
            )
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (num_obs,), dtype=np.float32)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (self.spec.num_actions,), dtype=np.float32)
            self._check_objective(jax)
            self._reset_fn = jax.jit(self._reset_batch)
            # The carry (Playground state + objective accumulator) is donated: XLA reuses its buffers for the
            # next state instead of allocating new ones (measured faster; the published outputs are not in it).
            self._step_fn = jax.jit(self._step_batch, donate_argnums=0)
            self._key = jax.device_put(jax.random.PRNGKey(int(seed) & 0xFFFF_FFFF), self.jax_device)
        self._carry: Any = None
        self._action_shape = (self.num_envs, self.spec.num_actions)
        #: How actions cross from torch to jax: "dlpack" (CUDA) or "device_put" (CPU); see _actions_to_jax.
        self.action_crossing = action_crossing(self.device)
        self._block = jax.block_until_ready
        self._device_put = jax.device_put
        self._from_dlpack = jax.numpy.from_dlpack
        self.last_jax_outputs: dict[str, Any] = {}
        self.extras: dict[str, torch.Tensor] = {}
        self.obs_buf = torch.zeros(self.num_envs, num_obs, device=self.device)
        self.rew_buf = torch.zeros(self.num_envs, device=self.device)
        self.reset_buf = torch.ones(self.num_envs, dtype=torch.long, device=self.device)

    # ---- construction ----
    def _load_env(self, registry: Any, s: PlaygroundSettings) -> Any:
        from mujoco_playground import wrapper

        overrides = dict(s.config_overrides)
        config = registry.get_default_config(s.name)
        task_default = str(config.get("impl", "")) if hasattr(config, "get") else ""
        impl = resolve_impl(s.impl, self.device.type, task_default, find_spec("warp") is not None)
        if impl == "jax" and s.impl == "auto" and self.device.type != "cpu" and task_default == "warp":
            log.info(
                "Playground %s: impl=jax on %s (its default, warp, needs warp-lang)", s.name, self.device
            )
        if impl:
            overrides["impl"] = impl
        if "vision" in config and config.vision:
            raise ConfigError(
                f"Playground task {s.name!r} is configured for pixels (vision=True): not supported"
            )
        try:
            env = registry.load(s.name, config=config, config_overrides=overrides or None)
        except (KeyError, AttributeError, ValueError) as exc:
            raise ConfigError(f"Playground rejected task.env.config_overrides={overrides}: {exc}") from None
        randomizer = None
        if s.domain_randomization:
            randomizer = registry.get_domain_randomizer(s.name)
        randomization_fn = None
        if randomizer is not None:
            import functools

            import jax

            keys = jax.random.split(jax.random.PRNGKey(0), self.num_envs)
            randomization_fn = functools.partial(randomizer, rng=keys)
        episode_length = int(s.episode_length or env._config.episode_length)
        return wrapper.wrap_for_brax_training(
            env,
            episode_length=episode_length,
            action_repeat=s.action_repeat,
            randomization_fn=randomization_fn,
            full_reset=s.full_reset,
        )

    def _check_objective(self, jax: Any) -> None:
        name = self.settings.true_objective
        if not name or name == "reward":
            return
        abstract = jax.eval_shape(self.raw_env.reset, jax.random.PRNGKey(0))
        if name not in abstract.metrics:
            valid = ["reward", *sorted(abstract.metrics)]
            raise ConfigError(
                f"task.env.true_objective={name!r} is not a metric of {self.settings.name}; valid: {valid}"
            )

    # ---- the jitted batch functions (pure; traced once) ----
    def _objective_term(self, state: Any) -> Any:
        name = self.settings.true_objective
        if not name or name == "reward":
            return state.reward
        return state.metrics[name]

    def _outputs(self, state: Any, objective: Any) -> dict[str, Any]:
        import jax.numpy as jnp

        done = state.done > 0
        steps = state.info["steps"]
        length = jnp.maximum(steps, 1.0)
        if self.settings.true_objective_reduce == "mean":
            objective = objective / length
        # Per-env scalars packed in one [4, n] float32 array: one crossing instead of four, rows contiguous.
        scalars = jnp.stack([state.reward, (state.info["truncation"] > 0), objective, done], axis=0).astype(
            jnp.float32
        )
        return {
            "obs": flatten_obs(state.obs, self.settings.obs_keys),
            "scalars": scalars,
            "progress": jnp.where(done, 0, steps).astype(jnp.int32),
        }

    def _reset_batch(self, key: Any) -> tuple[Any, dict[str, Any]]:
        import jax
        import jax.numpy as jnp

        state = self.env.reset(jax.random.split(key, self.num_envs))
        acc = jnp.zeros(self.num_envs, jnp.float32)
        return (state, acc), self._outputs(state, acc)

    def _step_batch(self, carry: tuple[Any, Any], actions: Any) -> tuple[Any, dict[str, Any]]:
        import jax.numpy as jnp

        state, acc = carry
        prev_done = state.done > 0
        state = self.env.step(state, jnp.clip(actions, -1.0, 1.0))
        acc = jnp.where(prev_done, 0.0, acc) + self._objective_term(state)
        return (state, acc), self._outputs(state, acc)

    # ---- jax -> torch ----
    def _publish(self, out: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.last_jax_outputs = out  # the jax arrays the torch views alias (kept for inspection)
        self.obs_buf = torch.from_dlpack(out["obs"])
        reward, truncation, objective, done = torch.from_dlpack(out["scalars"]).unbind(0)
        # a new tensor, never a write into the jax-owned view (1.0: the view itself, no extra op)
        self.rew_buf = reward if self.reward_scale == 1.0 else reward * self.reward_scale
        # The contract's int64 done and bool time_outs: device-local casts (no host transfer).
        self.reset_buf = done.to(torch.long)
        self.extras = {"time_outs": truncation > 0}
        if self.publishes_true_objective:
            self.extras["true_objective"] = objective
        return {"obs": self.obs_buf}

    def _actions_to_jax(self, actions: torch.Tensor) -> Any:
        """The policy's ``[num_envs, num_actions]`` actions as a jax array on the task's device, zero-copy.

        CUDA: ``jax.numpy.from_dlpack`` (the array aliases torch's memory). CPU: ``jax.device_put`` of the
        tensor's numpy view, which on the CPU device also aliases torch's memory (host memory *is* the device
        memory) and measured ~10-20 us cheaper per step than the dlpack import (benchmarks/RESULTS.md).
        """
        actions = actions.detach()
        if actions.dtype != torch.float32 or actions.device != self.device:
            actions = actions.to(self.device, torch.float32)
        if actions.shape != self._action_shape:
            actions = actions.reshape(self._action_shape)
        actions = actions.contiguous()
        if self.action_crossing == "device_put":
            return self._device_put(actions.numpy(), self.jax_device)
        return self._from_dlpack(actions)

    @property
    def progress_buf(self) -> torch.Tensor:
        """``[num_envs]`` int64 control steps into the current episode (0 on a row that just reset)."""
        progress = self.last_jax_outputs.get("progress")
        if progress is None:
            return torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        return torch.from_dlpack(progress).to(torch.long)

    # ---- the contract ----
    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env (a fresh key from the task's seed) and return the first observation dict."""
        import jax

        self._key, key = jax.random.split(self._key)
        self._carry, out = self._reset_fn(key)
        return self._publish(out)

    def step(self, actions: torch.Tensor):
        """Step every env; finished rows come back already reset; return ``(obs_dict, rew, done, extras)``."""
        if self._carry is None:
            self.reset()
        self._carry, out = self._step_fn(self._carry, self._actions_to_jax(actions))
        # Wait here, once, for the step's outputs (measured: cheaper than letting each dlpack export wait).
        obs = self._publish(self._block(out))
        return obs, self.rew_buf, self.reset_buf, self.extras

    def warmup(self) -> float:
        """Compile (or load from the cache) reset and step now; returns the seconds it took."""
        started = time.perf_counter()
        self.reset()
        self.step(torch.zeros(self.num_envs, self.spec.num_actions, device=self.device))
        self.reset()
        return time.perf_counter() - started

    def close(self) -> None:
        """Drop the jax state (buffers are freed when the last torch view goes)."""
        self._carry = None
