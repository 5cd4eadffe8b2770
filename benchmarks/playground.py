"""MuJoCo Playground through poptrain's adapter: env steps/s, compile time, and restart time with the cache.

    .venv/bin/python benchmarks/playground.py                      # CartpoleBalance, 1024 envs, CPU
    .venv/bin/python benchmarks/playground.py --task CheetahRun --num-envs 256 --no-startup
    .venv/bin/python benchmarks/playground.py --device cuda:0 --num-envs 4096     # on a GPU machine
    ... --json figures.json                                # also write every figure printed below

Prints, measured in this one run:
1. compile: seconds to build the task and compile reset+step with an empty JAX cache, and again in a
   fresh task with the persistent cache filled (tracing is still paid; XLA compilation is not).
2. raw: env steps/s of Playground's own jitted step (``jax.jit(env.step)`` of the same wrapped, vmapped
   env): (a) a Python loop on one resident action array with one block at the end (async dispatch, the
   best any loop can do; informational); (b) inside the rollout, around every adapter step (order
   alternating), one blocked step fed the policy's fresh action tensor, imported zero-copy the cheapest
   way on the device (the fair baseline: any torch policy driving Playground pays this), and one blocked
   step on a resident action array ("strict": no policy coupling at all).
3. adapter: env steps/s of our ``step`` during rl_games rollout collection (``python -m poptrain.train``'s
   run_training in-process, first epoch excluded), medians of per-step times, and the ratios to (b).
4. startup (a PBT restart pays this): wall time of ``python -m poptrain.train ... max_iterations=1`` in a
   new process with an empty cache vs the cache the previous run left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
    """Train through the real entry; around each of our steps, time two raw Playground steps (ABAB).

    Every rollout step runs, blocked until done (a rollout needs each step's result before the next policy
    call), on the same wrapped, vmapped env jitted by Playground's plain ``jax.jit(env.step)``:
    - raw, policy-fed (the fair baseline): the action is the tensor rl_games' policy just produced and handed
      to our step, imported zero-copy the cheapest way on this device (what any torch-policy loop must do);
    - raw, strict: one action array resident in jax, reused every step (no policy coupling at all);
    - the adapter: our ``step`` (import, step, packing, torch views).
    The order alternates step by step (raw first on even steps, adapter first on odd ones) so that load from
    other processes hits all three alike; figures are medians of per-step times, first epoch excluded.
    Returns (adapter, raw policy-fed, raw strict env-steps/s, training frames/s, final mean reward).
    """
    import jax
    import jax.numpy as jnp
    from hydra import compose, initialize_config_dir

    from poptrain import rlg, train
    from poptrain.build import setup_torch
    from poptrain.tasks.playground import action_crossing

    adapter_t: list[float] = []
    fed_t: list[float] = []
    strict_t: list[float] = []
    raw: dict[str, Any] = {}
    original = rlg.TaskVecEnv.step

    def raw_steps(env: Any, actions: torch.Tensor) -> None:
        if not raw:
            raw["step"] = jax.jit(env.env.step)
            with jax.default_device(env.jax_device):
                reset = jax.jit(env.env.reset)
                raw["fed"] = reset(jax.random.split(jax.random.PRNGKey(1), env.num_envs))
                raw["strict"] = reset(jax.random.split(jax.random.PRNGKey(2), env.num_envs))
                raw["actions"] = jnp.zeros((env.num_envs, env.spec.num_actions), jnp.float32)
            if action_crossing(env.device) == "device_put":
                raw["import"] = lambda a: jax.device_put(a.detach().numpy(), env.jax_device)
            else:
                raw["import"] = lambda a: jnp.from_dlpack(a.detach())
            for key in ("fed", "strict"):  # compile both argument signatures outside the timing
                raw[key] = jax.block_until_ready(raw["step"](raw[key], raw["import"](actions)))
                raw[key] = jax.block_until_ready(raw["step"](raw[key], raw["actions"]))
        started = time.perf_counter()
        raw["fed"] = raw["step"](raw["fed"], raw["import"](actions))
        jax.block_until_ready(raw["fed"].obs)
        middle = time.perf_counter()
        raw["strict"] = raw["step"](raw["strict"], raw["actions"])
        jax.block_until_ready(raw["strict"].obs)
        fed_t.append(middle - started)
        strict_t.append(time.perf_counter() - middle)

    def timed_step(self, actions):
        raw_first = len(adapter_t) % 2 == 0
        if raw_first:
            raw_steps(self.task, actions)
        started = time.perf_counter()
        out = original(self, actions)
        adapter_t.append(time.perf_counter() - started)
        if not raw_first:
            raw_steps(self.task, actions)
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
        setup_torch(cfg)
        started = time.perf_counter()
        result = train.run_training(cfg)
        total = time.perf_counter() - started
    finally:
        rlg.TaskVecEnv.step = original  # type: ignore[method-assign]
    horizon = int(cfg.train.params.config.horizon_length)

    def rate(times: list[float]) -> float:
        return num_envs / statistics.median(times[horizon:])

    return rate(adapter_t), rate(fed_t), rate(strict_t), result.frames / total, result.mean_reward


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
    parser.add_argument("--repeats", type=int, default=3, help="training runs, each measured ABAB")
    parser.add_argument("--no-startup", action="store_true", help="skip the two process-start measurements")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"task": args.task, "num_envs": args.num_envs, "device": args.device}
    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="pg_bench_cache_"))
    try:
        cold = compile_seconds(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        warm = compile_seconds(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        print(
            f"compile: task={args.task} envs={args.num_envs} cold={cold:.1f}s with_cache={warm:.1f}s",
            flush=True,
        )
        env = build(args.task, args.num_envs, args.device, str(work / "a"), args.episode_length)
        figures.update(
            compile_cold_s=cold, compile_cached_s=warm, impl=str(getattr(env.raw_env._config, "impl", ""))
        )
        loops, adapters, feds, stricts, totals = [], [], [], [], []
        for _ in range(args.repeats):
            loops.append(raw_steps_per_s(env, args.steps))
            rate, fed, strict, total, reward = adapter_in_rollout(
                args.task, args.num_envs, args.device, str(work / "a"), args.epochs, args.episode_length
            )
            adapters.append(rate)
            feds.append(fed)
            stricts.append(strict)
            totals.append(total)

        def fmt(xs: list[float]) -> str:
            return ", ".join(f"{x:,.0f}" for x in xs)

        def ratios(raws: list[float]) -> str:
            return ", ".join(f"{a / r:.2f}" for a, r in zip(adapters, raws, strict=True))

        print(f"raw, Python loop, async dispatch, one block at the end: {fmt(loops)} env-steps/s per run")
        print(f"raw, policy-fed (fresh action each step), blocked per step: {fmt(feds)} env-steps/s per run")
        print(
            f"raw, strict (one resident action array), blocked per step: {fmt(stricts)} env-steps/s per run"
        )
        print(f"adapter inside rl_games rollout collection: {fmt(adapters)} env-steps/s per run")
        print(f"ratio adapter / raw policy-fed (per run): {ratios(feds)} (goal >= 0.9)")
        print(f"ratio adapter / raw strict (per run): {ratios(stricts)}")
        print(
            f"training incl. policy and PPO update: {fmt(totals)} frames/s per run (final mean reward {reward:.1f})"
        )
        print(f"load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}")
        figures.update(
            raw_loop=loops,
            raw_fed=feds,
            raw_strict=stricts,
            adapter=adapters,
            training_frames_per_s=totals,
            adapter_over_fed=[a / r for a, r in zip(adapters, feds, strict=True)],
            adapter_over_strict=[a / r for a, r in zip(adapters, stricts, strict=True)],
            final_mean_reward=reward,
        )
        if not args.no_startup:
            cache = str(work / "b")
            first = startup_seconds(args.task, args.num_envs, args.device, cache, args.episode_length)
            second = startup_seconds(args.task, args.num_envs, args.device, cache, args.episode_length)
            print(
                f"startup (train, 1 epoch, new process): empty cache {first:.1f}s, filled cache {second:.1f}s, "
                f"saved {first - second:.1f}s"
            )
            figures.update(startup_empty_cache_s=first, startup_filled_cache_s=second)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
