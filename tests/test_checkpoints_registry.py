"""Atomic checkpoint writes and the task registry's public registration."""

from __future__ import annotations

import pytest
import torch

from poptrain.checkpoints import atomic_torch_save, load_checkpoint_file
from poptrain.errors import ConfigError
from poptrain.tasks import make_task, register_task, task_names
from poptrain.tasks.cartpole import Cartpole


def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp(tmp_path):
    path = tmp_path / "nn" / "ckpt.pth"
    atomic_torch_save({"model": {"w": torch.ones(2)}}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an unpicklable value
        atomic_torch_save({"model": {"w": torch.zeros(2)}, "bad": lambda: None}, path)
    assert torch.equal(load_checkpoint_file(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pth"]


def test_registered_tasks_are_built_by_name_and_names_are_never_overwritten():
    register_task("CartpoleForRegistryTest", Cartpole)
    assert "CartpoleForRegistryTest" in task_names()
    task = make_task("CartpoleForRegistryTest", {"env": {}}, num_envs=3)
    assert isinstance(task, Cartpole) and task.obs_buf.shape == (3, 4)
    for name in ("CartpoleForRegistryTest", "Cartpole"):  # registered at run time, and built in
        with pytest.raises(ConfigError, match=f"task {name!r} is already registered"):
            register_task(name, Cartpole)
