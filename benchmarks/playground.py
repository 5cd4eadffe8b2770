"""MuJoCo Playground through poptrain's adapter: env steps/s, compile time, and restart time with the cache.

    .venv/bin/python benchmarks/playground.py                      # CartpoleBalance, 1024 envs, CPU
    .venv/bin/python benchmarks/playground.py --task CheetahRun --num-envs 256 --no-startup
    .venv/bin/python benchmarks/playground.py --device cuda:0 --num-envs 4096     # on a GPU machine

Prints, measured in this one run:
1. compile: seconds to build the task and compile reset+step with an empty JAX cache, and again in a
   fresh task with the persistent cache filled (tracing is still paid; XLA compilation is not).
2. raw: env steps/s of Playground's own jitted step (the same wrapped, vmapped env), actions already on
   the device: (a) a Python loop with one block at the end (async dispatch, the best a loop can do);
   (b) one blocked step right after each adapter step inside the rollout (paired, same load).
3. adapter: env steps/s of the time spent inside our ``step`` during rl_games rollout collection
   (``python -m poptrain.train``'s run_training in-process, first epoch excluded), and the ratios.
4. startup (a PBT restart pays this): wall time of ``python -m poptrain.train ... max_iterations=1`` in a
   new process with an empty cache vs the cache the previous run left.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def build(task: str, num_envs: int, device: str, cache: str, episode_length: int) -> Any:
    from poptrain.tasks.playground import PlaygroundTask

    cfg = {"env": {"name": task, "jax_cache_dir": cache, "episode_length": episode_length}}
    return PlaygroundTask(cfg, num_envs=num_envs, device=device, seed=0)


def compile_seconds(task: str, num_envs: int, device: str, cache: str, episode_length: int) -> float:
    started = time.perf_counter()
    env = build(task, num_envs, device, cache, episode_length)
    env.warmup()
    return time.perf_counter() - started


def raw_steps_per_s(env: Any, steps: int) -> float:
    """Playground's wrapped env (vmap + episode + auto-reset) stepped by its own jitted step."""
    import jax
    import jax.numpy as jnp

    step = jax.jit(env.env.step)
    with jax.default_device(env.jax_device):
        state = jax.jit(env.env.reset)(jax.random.split(jax.random.PRNGKey(1), env.num_envs))
        actions = jnp.zeros((env.num_envs, env.spec.num_actions), jnp.float32)
    state = step(state, actions)
    jax.block_until_ready(state)
    started = time.perf_counter()
    for _ in range(steps):
        state = step(state, actions)
    jax.block_until_ready(state)
    return steps * env.num_envs / (time.perf_counter() - started)


def adapter_in_rollout(task: str, num_envs: int, device: str, cache: str, epochs: int, episode_length: int):
    """Train through the real entry; time each of our steps and, right after it, one raw Playground step.

    The raw step is the same wrapped env's jitted step on its own state with actions already on the
    device, blocked until done (a rollout needs every step's result before the next policy call). Pairing
    the two exposes both to the same load from other processes. The first epoch (compilation) is excluded.
    Returns (adapter env-steps/s, paired raw env-steps/s, training frames/s, final mean reward).
    """
    import jax
    import jax.numpy as jnp
    from hydra import compose, initialize_config_dir

    from poptrain import rlg, train

    adapter_t: list[float] = []
    raw_t: list[float] = []
    raw: dict[str, Any] = {}
    original = rlg.TaskVecEnv.step

    def timed_step(self, actions):
        started = time.perf_counter()
        out = original(self, actions)
        adapter_t.append(time.perf_counter() - started)
        env = self.task
        if not raw:
            raw["step"] = jax.jit(env.env.step)
            with jax.default_device(env.jax_device):
                raw["state"] = jax.jit(env.env.reset)(jax.random.split(jax.random.PRNGKey(1), env.num_envs))
                raw["actions"] = jnp.zeros((env.num_envs, env.spec.num_actions), jnp.float32)
            raw["state"] = jax.block_until_ready(raw["step"](raw["state"], raw["actions"]))
        started = time.perf_counter()
        raw["state"] = raw["step"](raw["state"], raw["actions"])
        jax.block_until_ready(raw["state"].obs)
        raw_t.append(time.perf_counter() - started)
        return out

    rlg.TaskVecEnv.step = timed_step  # type: ignore[method-assign]
    overrides = [
        "task=Playground",
        f"task.env.name={task}",
        f"num_envs={num_envs}",
        f"max_iterations={epochs}",
        f"task.env.episode_length={episode_length}",
        f"task.env.jax_cache_dir={cache}",
        f"sim_device={device}",
        f"rl_device={device}",
        f"train_dir={tempfile.mkdtemp(prefix='pg_bench_')}",
        "train.params.config.print_stats=False",
    ]
    try:
        with initialize_config_dir(str(train.CFG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        train._setup_torch(cfg)
        started = time.perf_counter()
        result = train.run_training(cfg)
        total = time.perf_counter() - started
    finally:
        rlg.TaskVecEnv.step = original  # type: ignore[method-assign]
    horizon = int(cfg.train.params.config.horizon_length)
    adapter, paired_raw = adapter_t[horizon:], raw_t[horizon:]
    return (
        len(adapter) * num_envs / sum(adapter),
        len(paired_raw) * num_envs / sum(paired_raw),
        result.frames / total,
        result.mean_reward,
    )


def startup_seconds(task: str, num_envs: int, device: str, cache: str, episode_length: int) -> float:
    argv = [
        sys.executable,
        "-m",
        "poptrain.train",
        "task=Playground",
        f"task.env.name={task}",
        f"num_envs={num_envs}",
        "max_iterations=1",
        f"task.env.episode_length={episode_length}",
        f"task.env.jax_cache_dir={cache}",
        f"sim_device={device}",
        f"rl_device={device}",
        f"train_dir={tempfile.mkdtemp(prefix='pg_start_')}",
    ]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="CartpoleBalance")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300, help="raw steps timed")
    parser.add_argument("--epochs", type=int, default=12, help="rl_games epochs for the adapter figure")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="best of N (the CPU is shared)")
    parser.add_argument("--no-startup", action="store_true", help="skip the two process-start measurements")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="pg_bench_cache_"))
    try:
        cold = compile_seconds(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        warm = compile_seconds(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        print(
            f"compile: task={args.task} envs={args.num_envs} cold={cold:.1f}s with_cache={warm:.1f}s",
            flush=True,
        )
        env = build(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        loops, adapters, raws, totals = [], [], [], []
        for _ in range(args.repeats):  # interleaved so that load from other processes hits both alike
            loops.append(raw_steps_per_s(env, args.steps))
            rate, raw_rate, total, reward = adapter_in_rollout(
                args.task, args.num_envs, args.device, str(work / "a"), args.epochs, args.episode_length
            )
            adapters.append(rate)
            raws.append(raw_rate)
            totals.append(total)
        ratios = [a / r for a, r in zip(adapters, raws, strict=True)]
        best = max(range(len(ratios)), key=lambda i: adapters[i])

        def fmt(xs: list[float]) -> str:
            return ", ".join(f"{x:,.0f}" for x in xs)

        print(
            f"raw, Python loop, async dispatch, one block at the end: {max(loops):,.0f} env-steps/s ({fmt(loops)})"
        )
        print(
            f"raw, paired with each adapter step, blocked per step: {raws[best]:,.0f} env-steps/s ({fmt(raws)})"
        )
        print(
            f"adapter inside rl_games rollout collection: {adapters[best]:,.0f} env-steps/s ({fmt(adapters)})"
        )
        print(f"ratio adapter/raw (paired, per run): {', '.join(f'{r:.2f}' for r in ratios)} (goal >= 0.9)")
        print(f"ratio adapter/raw (async loop, best of each): {max(adapters) / max(loops):.2f}")
        print(
            f"training incl. policy and PPO update: {max(totals):,.0f} frames/s (final mean reward {reward:.1f})"
        )
        if not args.no_startup:
            cache = str(work / "b")
            first = startup_seconds(args.task, args.num_envs, args.device, cache, args.episode_length)
            second = startup_seconds(args.task, args.num_envs, args.device, cache, args.episode_length)
            print(
                f"startup (train, 1 epoch, new process): empty cache {first:.1f}s, filled cache {second:.1f}s, "
                f"saved {first - second:.1f}s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
