"""Checkpoints cross devices: one written on a GPU restores on a machine without CUDA, and ours hold CPU tensors.

rl_games restores with a plain ``torch.load`` (no map_location), so a file whose tensors were saved on
``cuda`` fails to load where CUDA is missing and lands on the saving GPU's index elsewhere. poptrain's
restore (train.py ``_make_save_atomic``) maps every tensor onto the agent's device. Without a GPU here, a
"GPU checkpoint" is made by tagging the storages ``cuda:0`` at save time (``torch.serialization``'s
location tagger, the same mechanism that writes the tag for real CUDA tensors).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from poptrain.checkpoints import load_checkpoint_file

TRAIN_LINE = re.compile(r"^train: frames=(\d+) mean_reward=\S+ checkpoint=(\S+)$", re.M)
FRAMES_PER_EPOCH = 64 * 16  # num_envs x horizon_length of CartpolePPO


@contextlib.contextmanager
def saved_as_cuda() -> Iterator[None]:
    """While active, torch.save tags every CPU storage as living on ``cuda:0`` (as a CUDA tensor's would be)."""
    registry = torch.serialization._package_registry

    def tagger(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    def never(storage, location):  # loading goes through torch's own deserializers
        return None

    torch.serialization.register_package(0, tagger, never)
    entry = next(e for e in registry if e[1] is tagger)
    try:
        yield
    finally:
        registry.remove(entry)


def poptrain_train(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poptrain.train", "task=Cartpole", "num_envs=64", "num_threads=1", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dev_ckpt")
    proc = poptrain_train("max_iterations=1", f"train_dir={root}", "experiment=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = TRAIN_LINE.search(proc.stdout)
    assert match, proc.stdout[-2000:]
    return Path(match.group(2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks loading where CUDA is missing")
def test_a_checkpoint_saved_on_cuda_restores_and_plays_without_cuda(one_epoch, tmp_path):
    state = torch.load(one_epoch, map_location="cpu", weights_only=False)
    gpu_file = tmp_path / "gpu.pth"
    with saved_as_cuda():
        torch.save(state, gpu_file)
    # The precondition the fix is for: rl_games' own loader cannot read it here.
    from rl_games.algos_torch import torch_ext

    with pytest.raises(RuntimeError, match="CUDA"):
        torch_ext.load_checkpoint(str(gpu_file))

    proc = poptrain_train(
        "max_iterations=2", f"train_dir={tmp_path}", "experiment=resumed", f"checkpoint={gpu_file}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = TRAIN_LINE.search(proc.stdout)
    assert match, proc.stdout[-2000:]
    # restored at epoch 1 (frame counter from the checkpoint), then one more epoch
    assert int(match.group(1)) == 2 * FRAMES_PER_EPOCH

    play = poptrain_train("test=True", f"checkpoint={gpu_file}", "play_episodes=8", f"train_dir={tmp_path}")
    assert play.returncode == 0, play.stderr[-3000:]
    assert "play: episodes=8 " in play.stdout


def test_checkpoints_written_by_training_hold_cpu_tensors_and_load_weights_only(one_epoch):
    # map_location=None: every storage must come back where it was saved, i.e. on the CPU
    state = load_checkpoint_file(one_epoch, map_location=None)
    tensors = [v for v in state["model"].values() if isinstance(v, torch.Tensor)]
    opt = [t for s in state["optimizer"]["state"].values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert tensors and opt
    assert {t.device.type for t in tensors + opt} == {"cpu"}
