"""Noise-aware selection: the windowed objective's standard error, and a gate on exploit decisions.

The objective is the mean of the last finished episodes (the window). Its standard error:

- success rates (every value in the window is 0 or 1): binomial, ``sqrt(p (1 - p) / n)``;
- anything else: ``stdev / sqrt(n)`` (n >= 2; one value has no error estimate: NaN).

Episodes of one window come from the same policy and overlap in time, so this is a lower bound on the
error of the member's true performance; ``pbt.noise_z`` (default 0 = off, 2 recommended) scales it.

Rule (``gate``): a decision to exploit a leader stands only when
``leader - own > noise_z * sqrt(se_leader^2 + se_own^2)``; otherwise the member explores its own
hyperparameters and keeps its weights ("mutate"), as the replace rules do when no leader is worth copying.
When either error is unknown (NaN: metadata without it, or a carried objective) the decision stands.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from poptrain.pbt.selection import Decision


@dataclass(frozen=True)
class WindowStats:
    """Mean, standard error and size of one objective window."""

    mean: float  # NaN when empty
    se: float  # NaN when unknown (n < 2 and not binomial)
    n: int  # episodes in the window
    binomial: bool  # every value was 0 or 1 (a success rate)


def window_stats(values: Sequence[float]) -> WindowStats:
    n = len(values)
    if n == 0:
        return WindowStats(math.nan, math.nan, 0, False)
    mean = math.fsum(values) / n
    if all(v in (0.0, 1.0) for v in values):
        return WindowStats(mean, math.sqrt(mean * (1.0 - mean) / n), n, True)
    if n < 2:
        return WindowStats(mean, math.nan, n, False)
    return WindowStats(mean, statistics.stdev(values) / math.sqrt(n), n, False)


def gate(
    decision: Decision, own: float, own_se: float, leader: float, leader_se: float, noise_z: float
) -> Decision:
    """Keep an exploit only when the leader is better beyond ``noise_z`` combined standard errors."""
    if decision.action != "exploit" or noise_z <= 0:
        return decision
    if not (math.isfinite(own_se) and math.isfinite(leader_se)):
        return decision
    margin = noise_z * math.hypot(own_se, leader_se)
    lead = leader - own
    if lead > margin:
        return Decision(
            "exploit",
            decision.leader,
            f"{decision.reason}; lead {lead:.4g} > {noise_z:g} x se {math.hypot(own_se, leader_se):.3g}",
        )
    return Decision(
        "mutate",
        None,
        f"{decision.reason}; but lead {lead:.4g} is within noise ({noise_z:g} x se "
        f"{math.hypot(own_se, leader_se):.3g} = {margin:.3g}): explore own params instead",
    )


def signal(
    current: Sequence[tuple[float, float]], lows: Sequence[tuple[float, float]], z: float
) -> tuple[bool, str]:
    """Whether the population's objective carries signal yet: (yes, the numbers why).

    ``current``: each member's (objective, standard error) now; ``lows``: the same member's lowest recorded
    (objective, standard error) so far, in the same order. Signal = both hold, with ``z`` combined standard
    errors (an unknown error counts as 0):

    - some member has risen above its own lowest value by more than the noise: learning shows in the
      objective. Not "above its first value": Pendulum's first windows read ~-250 to -500 (episodes cut short
      by the spread initial phases) and fall to ~-1,150 before the swing-up is learned (epoch ~30-35 of 50),
      so differences before the rise rank members by how fast they got worse;
    - the best and the worst member now differ by more than the noise: there is something to copy
      (AcrobotHard: while no member has found the swing-up every success rate is 0 ± 0).

    Before that, copying a leader copies noise and exploring one's own parameters only loses the configuration
    the member started from, so the gate turns both into "keep".
    """
    pairs = [
        ((m, _known(s)), (lo, _known(lo_se)))
        for (m, s), (lo, lo_se) in zip(current, lows, strict=True)
        if math.isfinite(m) and math.isfinite(lo)
    ]
    if len(pairs) < 2:
        return False, f"no signal yet: {len(pairs)} member(s) with an objective"
    rise, rise_margin = max(
        ((m - lo, z * math.hypot(s, lo_se)) for (m, s), (lo, lo_se) in pairs), key=lambda r: r[0] - r[1]
    )
    now = [c for c, _ in pairs]
    (best, best_se), (worst, worst_se) = max(now), min(now)
    spread_margin = z * math.hypot(best_se, worst_se)
    numbers = (
        f"largest rise above a member's low {rise:.4g} (margin {rise_margin:.3g}), "
        f"best - worst {best - worst:.4g} (margin {spread_margin:.3g})"
    )
    if rise <= rise_margin:
        return False, f"no signal yet: no member's objective has risen beyond noise: {numbers}"
    if best - worst <= spread_margin:
        return False, f"no signal: members within noise of each other: {numbers}"
    return True, f"signal: {numbers}"


def _known(se: float) -> float:
    return se if math.isfinite(se) and se >= 0 else 0.0
