"""PURE: which member is best. The one ordering the engine (selection), ``poptrain status``, the report and the
export of ``best/`` all use, and the one rule for when a member is stale.

Stale: a member that has not finished and whose newest metadata is older than
``max(stale_after_s, stale_interval_factor * its own last interval)`` (its pace: with hour-long intervals a peer
written 40 minutes ago is on time). A finished member is never stale: its result is final, not lost.

Order (``ranked``): members with a finite objective, fresh ones first, then the stale ones; within each group the
higher objective first; ties go to the lower member index (deterministic). Members without a finite objective
are not ranked. The engine copies only from fresh members (``selection.rank`` keeps the fresh group); status
and the report show stale members too, ranked after every fresh one, so rank 1 in ``poptrain status`` is the
member the engine would treat as the leader and the member ``best/`` exports.

Until issue 11 the four places ordered differently: status and the report ranked stale members among the fresh
ones by objective, the export took the highest objective of any member (a member that crashed an hour ago
could win ``best/`` over a fresh better-trained one), and the engine counted finished members as stale once
they stopped writing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar


class Rankable(Protocol):
    """What ranking reads from a member's row (``MemberMeta``, ``selection.Candidate``, a status row)."""

    @property
    def member(self) -> int: ...
    @property
    def objective(self) -> float: ...


R = TypeVar("R", bound=Rankable)


def interval_of(meta: Any) -> float:
    """``extra["interval_s"]`` of a MemberMeta-like object; 0.0 when absent or not a finite number >= 0."""
    extra = getattr(meta, "extra", None)
    value = extra.get("interval_s") if isinstance(extra, dict) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        return 0.0
    return float(value)


def stale_limit_s(interval_s: float, stale_after_s: float, factor: float) -> float:
    """Age beyond which a member counts as absent: ``max(stale_after_s, factor * interval_s)``."""
    return max(float(stale_after_s), float(factor) * max(0.0, float(interval_s)))


def is_stale_meta(meta: Any, now: float, stale_after_s: float, factor: float) -> bool:
    """The stale rule for a MemberMeta-like object (``finished``, ``time``, ``extra``) at ``now``."""
    if getattr(meta, "finished", False):
        return False
    return now - float(meta.time) > stale_limit_s(interval_of(meta), stale_after_s, factor)


def ranked(rows: Iterable[R], stale: Callable[[R], bool] = lambda _row: False) -> list[R]:
    """``rows`` with a finite objective, best first: fresh before stale, higher objective, lower member index."""
    return sorted(
        (r for r in rows if math.isfinite(float(r.objective))),
        key=lambda r: (bool(stale(r)), -float(r.objective), int(r.member)),
    )


def best(rows: Iterable[R], stale: Callable[[R], bool] = lambda _row: False) -> R | None:
    """The first of ``ranked`` (None when no row has a finite objective)."""
    order = ranked(rows, stale)
    return order[0] if order else None
