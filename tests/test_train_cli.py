"""``python -m poptrain.train`` end to end: a short Cartpole run, play from it, and every bad input.

The training run happens once per session (fixture); each command is a real subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from poptrain.tasks import make_task

TRAIN_LINE = re.compile(r"^train: frames=(\d+) mean_reward=(-?[\d.]+|nan) checkpoint=(\S+)$")
PLAY_LINE = re.compile(r"^play: episodes=(\d+) mean_return=(-?[\d.]+) mean_length=([\d.]+)$")


def poptrain(*overrides: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "poptrain.train", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def initial_policy_return(episodes: int = 256) -> float:
    """Mean Cartpole return of the untrained policy's action distribution (N(0, 1), sigma_init 0)."""
    task = make_task("Cartpole", {"env": {}}, num_envs=episodes, seed=0)
    task.reset()
    gen = torch.Generator().manual_seed(0)
    ret = torch.zeros(episodes)
    finished = torch.zeros(episodes, dtype=torch.bool)
    first = torch.zeros(episodes)
    for _ in range(500):
        _, rew, done, _ = task.step(torch.randn(episodes, 1, generator=gen))
        ret += rew
        newly = done.bool() & ~finished
        first[newly] = ret[newly]
        finished |= done.bool()
        ret[done.bool()] = 0
    return float(first[finished].mean())


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("runs")
    proc = poptrain(
        "task=Cartpole",
        "num_envs=256",
        "max_iterations=40",
        f"train_dir={train_dir}",
        "experiment=ci",
        "seed=3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("train:")]
    assert len(lines) == 1, proc.stdout[-2000:]
    match = TRAIN_LINE.match(lines[0])
    assert match, lines[0]
    frames, mean_reward, ckpt = int(match[1]), float(match[2]), Path(match[3])
    return {"frames": frames, "mean_reward": mean_reward, "checkpoint": ckpt, "train_dir": train_dir}


def test_training_raises_the_mean_reward_clearly_above_the_start(trained):
    start = initial_policy_return()
    assert start < 60  # the untrained policy drops the pole within a few dozen steps
    assert trained["mean_reward"] > start + 80, (start, trained["mean_reward"])
    assert trained["frames"] >= 40 * 256 * 16


def test_training_writes_checkpoints_and_summaries_under_the_experiment(trained):
    ckpt, exp = trained["checkpoint"], trained["train_dir"] / "ci"
    assert ckpt.is_file() and ckpt.parent == exp / "nn"
    assert list((exp / "summaries").glob("events.out.tfevents.*"))
    state = torch.load(ckpt, weights_only=False)
    assert {"model", "epoch", "frame"} <= set(state)


def play(trained, *extra: str) -> subprocess.CompletedProcess[str]:
    return poptrain(
        "task=Cartpole",
        "test=True",
        f"checkpoint={trained['checkpoint']}",
        "num_envs=16",
        "play_episodes=16",
        f"train_dir={trained['train_dir']}",
        *extra,
    )


@pytest.fixture(scope="session")
def calm_play(trained) -> subprocess.CompletedProcess[str]:
    return play(trained, "sigma=0.0", "seed=11")


def play_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("play:")]


def test_play_prints_exactly_one_play_line_and_is_reproducible_with_sigma_zero(trained, calm_play):
    first, second = play_lines(calm_play), play_lines(play(trained, "sigma=0.0", "seed=11"))
    assert len(first) == 1 and len(second) == 1
    match = PLAY_LINE.match(first[0])
    assert match and int(match[1]) == 16
    assert first == second
    # the trained deterministic policy does better than the random start
    assert float(match[2]) > initial_policy_return()


def test_play_with_exploration_noise_differs_from_deterministic(trained, calm_play):
    assert play_lines(play(trained, "sigma=2.0", "seed=11")) != play_lines(calm_play)


# ---- bad input: one clear error line, exit code 2, no traceback --------------------------------------
@pytest.fixture(scope="session")
def pendulum_checkpoint(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("pend")
    proc = poptrain(
        "task=Pendulum", "num_envs=16", "max_iterations=2", f"train_dir={train_dir}", "experiment=p"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return TRAIN_LINE.match(proc.stdout.splitlines()[-1])[3]  # type: ignore[index]


def assert_one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not any(ln.startswith(("train:", "play:")) for ln in proc.stdout.splitlines())
    return errors[0]


def test_unknown_task(tmp_path):
    assert_one_error(poptrain("task=Cartpol", f"train_dir={tmp_path}"), "'Cartpol'", "Cartpole", "Pendulum")


@pytest.mark.parametrize(
    "key", ["num_env=3", "train.params.config.learning_rat=1e-3", "task.env.maxEpisodeLen=5"]
)
def test_unknown_config_key(tmp_path, key):
    assert_one_error(poptrain(key, f"train_dir={tmp_path}"), key.split("=")[0], "unknown config key")


@pytest.mark.parametrize("n", ["0", "-4"])
def test_num_envs_not_positive(tmp_path, n):
    assert_one_error(poptrain(f"num_envs={n}", f"train_dir={tmp_path}"), "num_envs", n)


def test_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.pth"
    assert_one_error(poptrain("test=True", f"checkpoint={missing}", f"train_dir={tmp_path}"), str(missing))


def test_non_checkpoint_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint\n")
    assert_one_error(
        poptrain("test=True", f"checkpoint={junk}", f"train_dir={tmp_path}"), str(junk), "not a readable"
    )
    weights = tmp_path / "tensor.pth"
    torch.save({"weights": torch.zeros(3)}, weights)
    assert_one_error(poptrain("test=True", f"checkpoint={weights}", f"train_dir={tmp_path}"), "no 'model'")


def test_checkpoint_of_another_task_names_the_differing_shapes(tmp_path, pendulum_checkpoint):
    err = assert_one_error(
        poptrain(
            "task=Cartpole",
            "test=True",
            f"checkpoint={pendulum_checkpoint}",
            "num_envs=4",
            f"train_dir={tmp_path}",
        ),
        "does not match",
    )
    assert "(32, 3) vs model (32, 4)" in err and "(3,) vs model (4,)" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu(tmp_path):
    assert_one_error(poptrain("rl_device=cuda", f"train_dir={tmp_path}"), "rl_device='cuda'", "cpu")
