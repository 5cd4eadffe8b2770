"""PBT population on MuJoCo Playground CheetahRun: the GPU showcase (runs on CPU too, slowly).

    python -m poptrain.launcher.run --run poptrain.experiments.playground_pbt --backend processes

Each of the ``NUM_POLICIES`` members trains CheetahRun (dm_control suite; its assets ship with the
package, so it works offline) with the GPU-sized PPO config (4,096 envs, [256, 128, 64] MLP) on
``cuda:0``; Playground's jax and rl_games' torch share the GPU (the adapter turns off jax's memory
preallocation). Members share ``train_dir``, so the JAX compilation cache under ``<train_dir>/.jax_cache``
is filled by the first member and reused by every other member and by every PBT restart (os.execv).
PBT compares members on ``true_objective``, the episode return of the task's own reward.

Needs ``pip install 'poptrain[playground]'`` plus a CUDA build of jax (``pip install 'jax[cuda12]'``)
for the GPU. ``make_run_description(device="cpu")`` gives a CPU-sized variant (256 envs, small MLP,
4 members): expect ~80-90 s of compilation for the first member, then a few thousand env-steps/s.
"""

from __future__ import annotations

import sys

from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

TASK = "PlaygroundCheetahRun"
NUM_POLICIES = 8


def member_command(num_policies: int, device: str, num_envs: int | None, max_iterations: int) -> list[str]:
    """argv of one population member (the launcher appends policy_idx, experiment and train_dir)."""
    cmd = [
        sys.executable,
        "-m",
        "poptrain.train",
        f"task={TASK}",
        "pbt=pbt_default",
        f"pbt.num_policies={num_policies}",
        f"sim_device={device}",
        f"rl_device={device}",
        f"max_iterations={max_iterations}",
    ]
    if device == "cpu":
        cmd.append("train=PlaygroundPPO")  # the CPU-sized PPO config
    if num_envs is not None:
        cmd.append(f"num_envs={num_envs}")
    return cmd


def make_run_description(
    num_policies: int = NUM_POLICIES,
    device: str = "cuda:0",
    num_envs: int | None = None,
    max_iterations: int = 2000,
) -> RunDescription:
    """The population: ``num_policies`` members of CheetahRun, one process each, on ``device``."""
    if device == "cpu" and num_envs is None:
        num_envs = 256
    experiment = Experiment(
        "cheetah_run",
        member_command(num_policies, device, num_envs, max_iterations),
        ParamGrid([("pbt.policy_idx", list(range(num_policies)))]),
    )
    return RunDescription(
        f"playground_{TASK[len('Playground') :].lower()}_pbt",
        experiments=[experiment],
        experiment_arg_name="experiment",
        experiment_dir_arg_name="train_dir",
        param_prefix="",
    )


RUN_DESCRIPTION = make_run_description()
