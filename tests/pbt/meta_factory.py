"""A valid MemberMeta for workspace tests that import it as a module (tests/pbt/conftest.py has a fixture with
other values; a module import of conftest clashes with tests/report/conftest.py in one pytest session)."""

from __future__ import annotations

import time
from typing import Any

from poptrain.pbt.workspace import MemberMeta

LR = "train.params.config.learning_rate"


def make_meta(member: int, iteration: int, **kw: Any) -> MemberMeta:
    fields: dict[str, Any] = dict(
        member=member, iteration=iteration, frames=iteration * 16384, epoch=iteration * 8, objective=1.0 + member,
        params={LR: 3e-4}, checkpoint=f"{iteration:06d}.pth", experiment=f"m{member}",
        experiment_dir=f"/runs/m{member}", time=time.time(), num_policies=4,
    )  # fmt: skip
    fields.update(kw)
    return MemberMeta(**fields)
