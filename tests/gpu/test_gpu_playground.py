"""The MuJoCo Playground adapter's CUDA path: jax and torch share the GPU's buffers, nothing goes through the host.

- outputs: every tensor handed to rl_games is a ``torch.from_dlpack`` view of jax's output buffer (same data
  pointer, on the GPU);
- actions: the policy's CUDA tensor crosses with ``jax.numpy.from_dlpack`` (same data pointer, on jax's GPU);
- a whole step runs under ``jax.transfer_guard("disallow")`` (any host<->device copy would raise);
- a short rl_games run trains on it with ``rl_device=cuda sim_device=cuda``.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest
import torch
from gpu_helpers import Capture, compose, on_cuda

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        find_spec("mujoco_playground") is None or find_spec("jax") is None,
        reason="playground extra not installed (pip install 'poptrain[playground]')",
    ),
]

ENVS = 1024
EPISODE = 100


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("jax_cache_gpu"))


@pytest.fixture(scope="module")
def task(device, jax_cache):
    from poptrain.tasks.playground import PlaygroundTask

    cfg = {"name": "Playground", "env": {"name": "CartpoleBalance", "episode_length": EPISODE,
                                         "true_objective": "reward", "jax_cache_dir": jax_cache}}  # fmt: skip
    return PlaygroundTask(cfg, num_envs=ENVS, device=device, seed=5)


def test_jax_runs_on_the_same_gpu_as_torch_without_grabbing_its_memory(task, device):
    assert os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE") == "false"  # jax must not take 75 % of the GPU
    if on_cuda(device):
        assert task.jax_device.platform == "gpu"
        assert task.jax_device.id == (torch.device(device).index or 0)
        assert task.action_crossing == "dlpack"
    else:
        assert task.jax_device.platform == "cpu"


def test_outputs_are_views_of_jax_buffers_and_a_step_moves_nothing_through_the_host(task, device):
    import jax

    dev = torch.device(device).type
    task.reset()
    actions = torch.rand(ENVS, 1, device=device) * 2 - 1
    task.step(actions)  # compiled now; the guarded step must not transfer anything
    with jax.transfer_guard("disallow"):
        obs_dict, rew, done, extras = task.step(actions)
    out = task.last_jax_outputs
    assert obs_dict["obs"].device.type == dev and rew.device.type == dev and done.device.type == dev
    assert obs_dict["obs"].data_ptr() == out["obs"].unsafe_buffer_pointer()
    scalars = out["scalars"].unsafe_buffer_pointer()  # rows: reward, truncation, objective, done
    assert rew.data_ptr() == scalars
    assert extras["true_objective"].data_ptr() == scalars + 2 * ENVS * 4
    assert {d.platform for d in out["obs"].devices()} == {task.jax_device.platform}


def test_actions_cross_to_jax_zero_copy(task, device):
    import jax

    actions = torch.rand(ENVS, 1, device=device) * 2 - 1
    with jax.transfer_guard("disallow"):
        imported = task._actions_to_jax(actions)
    assert imported.unsafe_buffer_pointer() == actions.data_ptr()  # aliases torch's memory: no copy
    assert imported.devices() == {task.jax_device}
    # and back: a torch view of the jax array is the same memory again
    assert torch.from_dlpack(imported).data_ptr() == actions.data_ptr()


def test_rl_games_trains_on_the_adapter_on_the_device(device, tmp_path, jax_cache):
    from poptrain.train import run_training

    cfg = compose(
        "task=PlaygroundCartpoleBalance", "num_envs=256", "max_iterations=3", f"rl_device={device}",
        f"sim_device={device}", f"train_dir={tmp_path}", f"task.env.jax_cache_dir={jax_cache}",
        f"task.env.episode_length={EPISODE}",
    )  # fmt: skip
    capture = Capture()
    result = run_training(cfg, observers=[capture])
    horizon = int(cfg.train.params.config.horizon_length)
    assert result.frames == 3 * 256 * horizon
    assert capture.algo.obs["obs"].device.type == torch.device(device).type
