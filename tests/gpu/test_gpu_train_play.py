"""Cartpole trained on ``rl_device=cuda`` reaches its target; playing that checkpoint on CUDA is deterministic."""

from __future__ import annotations

import pytest
import torch
from gpu_helpers import Capture, compose, on_cuda

from poptrain.checkpoints import load_checkpoint_file

pytestmark = pytest.mark.gpu

TARGET = 400.0  # README's Cartpole target (mean return)
EPOCHS = 100  # the target came at epoch ~39 at 1,024 envs on CPU; an episode of 400 steps needs 25 epochs


def num_envs(device: str) -> int:
    return 4096 if on_cuda(device) else 1024


@pytest.fixture(scope="module")
def trained(device, tmp_path_factory):
    from poptrain.train import run_training

    root = tmp_path_factory.mktemp("gpu_train")
    cfg = compose(
        "task=Cartpole", f"num_envs={num_envs(device)}", f"max_iterations={EPOCHS}", f"rl_device={device}",
        f"sim_device={device}", f"train_dir={root}", "experiment=cartpole_cuda", "seed=3",
    )  # fmt: skip
    capture = Capture()
    result = run_training(cfg, observers=[capture])
    return result, capture.algo


def test_training_on_the_device_reaches_the_target(trained, device):
    result, algo = trained
    dev = torch.device(device).type
    assert str(algo.ppo_device).startswith(device.split(":")[0])
    assert {p.device.type for p in algo.model.parameters()} == {dev}
    assert algo.obs["obs"].device.type == dev  # the task's tensors feed the agent where they live
    assert result.frames == EPOCHS * 16 * num_envs(device)
    assert result.mean_reward >= TARGET, (
        f"mean reward {result.mean_reward:.1f} < {TARGET} after {EPOCHS} epochs"
    )


def test_checkpoints_written_on_the_device_hold_cpu_tensors(trained):
    result, _ = trained
    # map_location=None: tensors come back where they were saved; CPU = the file loads on any machine
    state = load_checkpoint_file(result.checkpoint, map_location=None)
    devices = {t.device.type for t in state["model"].values()}
    devices |= {t.device.type for s in state["optimizer"]["state"].values() for t in s.values()}
    assert devices == {"cpu"}


def test_play_on_the_device_is_deterministic(trained, device, monkeypatch):
    from rl_games.torch_runner import Runner

    from poptrain.play import run_play

    result, _ = trained
    players = []
    create_player = Runner.create_player

    def keep_player(self):
        players.append(create_player(self))
        return players[-1]

    monkeypatch.setattr(Runner, "create_player", keep_player)
    overrides = (
        "task=Cartpole", "num_envs=256", f"rl_device={device}", f"sim_device={device}", "test=True",
        f"checkpoint={result.checkpoint}", "sigma=0.0", "play_episodes=256", "seed=11",
    )  # fmt: skip
    first = run_play(compose(*overrides))
    second = run_play(compose(*overrides))
    dev = torch.device(device).type
    assert len(players) == 2
    assert {p.device.type for p in players[0].model.parameters()} == {dev}
    assert first.episodes == second.episodes == 256
    assert first.mean_return == pytest.approx(second.mean_return, rel=1e-6)
    assert first.mean_length == second.mean_length
    assert first.mean_return >= TARGET
