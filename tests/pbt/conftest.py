"""Shared helpers for the PBT engine tests."""

from __future__ import annotations

import time
from typing import Any

import pytest

from poptrain.pbt.workspace import MemberMeta


def make_meta(member: int = 0, iteration: int = 1, **kw: Any) -> MemberMeta:
    """A valid MemberMeta with small, realistic values (override any field with keywords)."""
    fields: dict[str, Any] = dict(
        member=member,
        iteration=iteration,
        frames=iteration * 16384,
        epoch=iteration * 8,
        objective=123.5 + member,
        params={"train.params.config.learning_rate": 0.0003, "train.params.config.mini_epochs": 8},
        checkpoint=f"{iteration:06d}.pth",
        experiment=f"cartpole_p{member}",
        experiment_dir=f"/runs/cartpole_p{member}",
        time=time.time(),
        num_policies=4,
    )
    fields.update(kw)
    return MemberMeta(**fields)


@pytest.fixture
def meta_factory():
    return make_meta
