"""Helpers of the ``gpu``-marked tests (tests/gpu/): the device they run on and in-process training."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import torch

DEVICE_ENV = "POPTRAIN_GPU_TEST_DEVICE"


def chosen_device() -> str:
    """The device the gpu tests use: ``$POPTRAIN_GPU_TEST_DEVICE`` when set (cpu, cuda, cuda:N), else cuda."""
    forced = os.environ.get(DEVICE_ENV, "")
    if forced and not re.fullmatch(r"cpu|cuda(:\d+)?", forced):
        raise pytest.UsageError(f"{DEVICE_ENV}={forced!r}; valid: cpu, cuda, cuda:N")
    return forced or "cuda"


def on_cuda(device: str) -> bool:
    return device.startswith("cuda")


def compose(*overrides: str) -> Any:
    """The composed, validated config of ``python -m poptrain.train <overrides>`` (torch set up as there)."""
    from poptrain.build import setup_torch
    from poptrain.config import compose as compose_config

    cfg = compose_config(*overrides)
    setup_torch(cfg)
    return cfg


class Capture:
    """An rl_games observer that keeps the agent and calls ``on_epoch(algo, epoch)`` after every epoch."""

    def __init__(self, on_epoch: Any = None) -> None:
        self.algo: Any = None
        self.on_epoch = on_epoch
        self.epochs = 0

    def after_init(self, algo: Any) -> None:
        self.algo = algo

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        self.epochs += 1
        if self.on_epoch is not None:
            self.on_epoch(self.algo, self.epochs)


def tensor_devices(value: Any) -> set[str]:
    """Device types of every tensor in nested dicts / lists (e.g. an optimizer's state)."""
    if isinstance(value, torch.Tensor):
        return {value.device.type}
    if isinstance(value, dict):
        return set().union(*(tensor_devices(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(tensor_devices(v) for v in value)) if value else set()
    return set()
