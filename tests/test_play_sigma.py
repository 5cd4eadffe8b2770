"""Play with ``sigma`` on a real rl_games checkpoint (issue 9, point 7): our meaning (a std, any network,
``fixed_sigma: False`` included, which used to crash in ``net.sigma.fill_``) and IsaacGymEnvs' meaning behind
``sigma_mode=rl_games`` (the raw value into a fixed_sigma network's log-std parameter)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

PLAY = re.compile(r"^play: episodes=(\d+) mean_return=(-?[\d.]+) mean_length=([\d.]+)$", re.MULTILINE)
CKPT = re.compile(r"^train: .* checkpoint=(\S+)$", re.MULTILINE)


def run(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "poptrain.train", *overrides],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def trained(tmp_path, fixed_sigma: bool) -> str:
    proc = run("task=Pendulum", "num_envs=64", "max_iterations=3", f"train_dir={tmp_path}", "seed=1",
               f"train.params.network.space.continuous.fixed_sigma={fixed_sigma}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = CKPT.search(proc.stdout)
    assert match, proc.stdout[-2000:]
    return match.group(1)


def play(ckpt: str, fixed_sigma: bool, *overrides: str) -> tuple[str, str]:
    proc = run("task=Pendulum", "num_envs=16", "test=True", f"checkpoint={ckpt}", "play_episodes=16", "seed=5",
               f"train.params.network.space.continuous.fixed_sigma={fixed_sigma}", *overrides)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    match = PLAY.search(proc.stdout)
    assert match, proc.stdout[-2000:]
    return match.group(0), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def learned_sigma(tmp_path_factory):
    ckpt = trained(tmp_path_factory.mktemp("free"), fixed_sigma=False)
    return ckpt, play(ckpt, False, "sigma=0")[0]


def test_a_learned_sigma_network_plays_with_our_sigma(learned_sigma) -> None:
    ckpt, calm = learned_sigma  # sigma=0: deterministic, the policy mean
    noisy, _ = play(ckpt, False, "sigma=3.0")
    assert noisy != calm  # sampled with std 3 around the same means
    tiny, _ = play(ckpt, False, "sigma=1e-9")
    assert tiny == calm  # a std of 1e-9 samples the mean: the std really is the one asked for


def test_rl_games_sigma_mode_keeps_a_learned_sigma_with_a_warning(learned_sigma) -> None:
    ckpt, calm = learned_sigma
    line, out = play(ckpt, False, "sigma_mode=rl_games", "sigma=0.5")
    assert "ignored: the network has fixed_sigma False" in out
    assert line == calm  # nothing changed: deterministic player, own sigma


def test_rl_games_sigma_mode_writes_the_raw_log_std(tmp_path) -> None:
    ckpt = trained(tmp_path, fixed_sigma=True)
    calm, _ = play(ckpt, True, "sigma=0")
    # IGE meaning: sigma=-30 is a log-std (std 1e-13): a sampling player then plays the mean; in our meaning
    # sigma=-30 is refused, and our sigma=0 (deterministic) is the same play
    sampled, _ = play(
        ckpt, True, "sigma_mode=rl_games", "sigma=-30", "+train.params.config.player.deterministic=False"
    )
    assert sampled == calm
    raw_zero, _ = play(
        ckpt, True, "sigma_mode=rl_games", "sigma=0", "+train.params.config.player.deterministic=False"
    )
    assert raw_zero != calm  # log-std 0 = std 1: noisy
    bad = run("task=Pendulum", "test=True", f"checkpoint={ckpt}", "sigma=-30")
    assert bad.returncode == 2 and "sigma must be a number >= 0" in bad.stderr
