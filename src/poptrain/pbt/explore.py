"""Exploration that can move: per-key search spaces, perturbation sized to the run, resampling, PB2 dispatch.

``pbt.explore`` chooses how a member's hyperparameters change after an exploit (or a "mutate" decision):

- ``mutate``: the legacy operators of ``poptrain.pbt.mutation`` (IsaacGymEnvs' factors, kept for old runs).
- ``perturb``: each key (probability ``mutation_rate``) either is resampled from its prior (probability
  ``resample_probability``, as Ray Tune's PBT does) or moves in its search space by a step of
  ``U(1, 2) / explore_steps`` of the range's width, up or down with probability 1/2, reflected at the bounds.
  ``explore_steps`` decisions in one direction therefore always cross the whole declared range (each step is
  at least 1/``explore_steps`` of it): with the default 8 and the ~13 decisions of a 150-epoch AcrobotHard run
  (an interval every 10 epochs after the first 20) a key can go from one end to the other and back half way.
- ``resample``: each key (probability ``mutation_rate``) is drawn afresh from its prior.
- ``pb2``: ``poptrain.pbt.pb2`` chooses every key at once (a GP bandit over the improvement per interval).

Search spaces (``Dim``), from the key's mutation spec:

- ``log``: ``ln x`` (rates, coefficients). A range that starts at 0 (``entropy_coef: {min: 0}``) starts the
  log space at its floor: ``zero`` when given, else ``DEFAULT_ZERO_BASE`` (1e-4); 0 itself maps to the floor.
- ``log1m``: ``-ln(1 - x)`` (discounts): gamma 0.9 -> 0.99 -> 0.999 are equal steps, as they are equal
  steps in the effective horizon 1 / (1 - gamma) (10 -> 100 -> 1,000).
- ``linear``: ``x`` (clip ranges, integer counts).

The default space is ``linear`` for integer keys, ``log1m`` for ``mutate_discount``, ``log`` when the range is
non-negative, else ``linear``. The range is the spec's ``min``/``max``, else the operator's built-in bounds; the new
strategies need one for every key (``search_dims`` lists every key that lacks it). The prior is uniform in the
search space over ``init`` (default: the range).

Everything here is pure: numbers come from the injected ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from poptrain.pbt.mutation import DEFAULT_ZERO_BASE, OPERATORS, MutationSpec

EXPLORE_MODES = ("mutate", "perturb", "resample", "pb2")

#: 1 - x never gets closer to 0 than this in the log1m space (gamma <= 0.9999).
LOG1M_FLOOR = 1e-4


@dataclass(frozen=True)
class Dim:
    """One key's bounded search space: values <-> the unit interval (uniform in ``space``)."""

    key: str  # full dotted config key
    space: str  # log | log1m | linear
    lo: float  # value range (inclusive)
    hi: float
    integer: bool = False  # values are rounded to int
    init_lo: float | None = None  # prior range (None = [lo, hi])
    init_hi: float | None = None
    floor: float = DEFAULT_ZERO_BASE  # log space: smallest positive value (a range starting at 0 starts here)

    def _t(self, x: float) -> float:
        if self.space == "log":
            return math.log(max(x, self._log_lo()))
        if self.space == "log1m":
            return -math.log(max(1.0 - x, LOG1M_FLOOR))
        return x

    def _t_inv(self, t: float) -> float:
        if self.space == "log":
            return math.exp(t)
        if self.space == "log1m":
            return 1.0 - math.exp(-t)
        return t

    def _log_lo(self) -> float:
        return self.lo if self.lo > 0 else self.floor

    def to_unit(self, x: float) -> float:
        """The value's position in the search space, 0 = lo, 1 = hi (clipped)."""
        a, b = self._t(self.lo), self._t(self.hi)
        if b == a:
            return 0.0
        return min(1.0, max(0.0, (self._t(float(x)) - a) / (b - a)))

    def from_unit(self, u: float) -> float | int:
        """The value at position ``u`` in [0, 1] (clipped to the range, rounded for integer keys)."""
        a, b = self._t(self.lo), self._t(self.hi)
        x = self._t_inv(a + min(1.0, max(0.0, u)) * (b - a))
        x = min(self.hi, max(self.lo if self.space != "log" else self._log_lo(), x))
        if self.integer:
            return int(min(math.floor(self.hi), max(math.ceil(self.lo), round(x))))
        return float(x)

    def prior_unit(self) -> tuple[float, float]:
        """The prior's range in unit coordinates."""
        lo = self.to_unit(self.init_lo) if self.init_lo is not None else 0.0
        hi = self.to_unit(self.init_hi) if self.init_hi is not None else 1.0
        return lo, hi


def default_space(spec: MutationSpec, lo: float) -> str:
    if spec.space is not None:
        return spec.space
    if spec.integer or OPERATORS[spec.op].integer:  # counts (mini_epochs 1..8): every value equally reachable
        return "linear"
    if spec.op == "mutate_discount":
        return "log1m"
    if lo >= 0:  # rates and coefficients: a factor matters, not a difference
        return "log"
    return "linear"


def search_dims(specs: Mapping[str, MutationSpec]) -> tuple[list[Dim], list[str]]:
    """One Dim per key, and every problem (a key without a range, a log space that cannot hold its range)."""
    dims: list[Dim] = []
    problems: list[str] = []
    for key, spec in specs.items():
        op = OPERATORS[spec.op]
        lo = spec.min if spec.min is not None else op.min
        hi = spec.max if spec.max is not None else op.max
        if lo is None or hi is None:
            problems.append(
                f"pbt.mutation[{key!r}] needs a declared range {{min, max}} for pbt.explore / pbt.initial "
                f"(has min={lo}, max={hi})"
            )
            continue
        space = default_space(spec, float(lo))
        integer = spec.integer or op.integer
        floor = spec.zero if spec.zero is not None and spec.zero > 0 else DEFAULT_ZERO_BASE
        if space == "log" and (lo < 0 or float(hi) <= (lo if lo > 0 else floor)):
            problems.append(f"pbt.mutation[{key!r}]: a log space needs 0 <= min < max above {floor:g}")
            continue
        if space == "log1m" and not (0 <= lo < hi <= 1):
            problems.append(f"pbt.mutation[{key!r}]: a log1m space needs 0 <= min < max <= 1")
            continue
        init_lo, init_hi = spec.init if spec.init is not None else (None, None)
        if init_lo is not None and init_hi is not None and (init_lo < lo or init_hi > hi):
            problems.append(
                f"pbt.mutation[{key!r}].init [{init_lo:g}, {init_hi:g}] is outside [{lo:g}, {hi:g}]"
            )
            continue
        dims.append(Dim(key, space, float(lo), float(hi), integer, init_lo, init_hi, floor))
    return dims, problems


# ----------------------------------------------------------------------------------------------------------
# perturb / resample
# ----------------------------------------------------------------------------------------------------------
def perturb_value(value: float, dim: Dim, rng: random.Random, steps: int) -> float | int:
    """One perturbation: ``U(1, 2) / steps`` of the range in ``dim``'s space, up or down, reflected at the bounds."""
    direction = 1.0 if rng.random() < 0.5 else -1.0
    u = dim.to_unit(value) + direction * rng.uniform(1.0, 2.0) / steps
    while u < 0.0 or u > 1.0:  # reflect: a member at a bound still moves
        u = -u if u < 0.0 else 2.0 - u
    new = dim.from_unit(u)
    if dim.integer and new == value:  # a step below one unit: still move by 1, inside the range
        step = int(direction)
        new = int(value) + (step if dim.lo <= int(value) + step <= dim.hi else -step)
    return new


def sample_value(dim: Dim, rng: random.Random) -> float | int:
    """A draw from the key's prior (uniform in its search space over ``init``)."""
    lo, hi = dim.prior_unit()
    return dim.from_unit(rng.uniform(lo, hi))


def explore(
    params: Mapping[str, Any],
    dims: Sequence[Dim],
    rng: random.Random,
    *,
    mode: str,
    mutation_rate: float,
    resample_probability: float,
    steps: int,
    pb2_suggest: Callable[[], dict[str, float | int]] | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Return (new params, keys whose value changed, one line per operation done) for ``mode``.

    ``perturb`` and ``resample`` draw one ``rng.random()`` per key for ``mutation_rate`` (keys in ``dims``
    order); ``perturb`` draws one more for ``resample_probability``. ``pb2`` calls ``pb2_suggest()``.
    """
    if mode not in EXPLORE_MODES or mode == "mutate":
        raise ValueError(f"explore: mode {mode!r} is handled here only for {EXPLORE_MODES[1:]}")
    new = dict(params)
    ops: list[str] = []
    if mode == "pb2":
        if pb2_suggest is None:
            raise ValueError("explore: mode 'pb2' needs pb2_suggest")
        suggestion = pb2_suggest()
        for d in dims:
            new[d.key] = suggestion[d.key]
            ops.append(f"pb2 {d.key}: {params[d.key]:g} -> {new[d.key]:g}")
    else:
        for d in dims:
            old = params[d.key]
            if rng.random() >= mutation_rate:
                continue
            if mode == "resample" or rng.random() < resample_probability:
                new[d.key] = sample_value(d, rng)
                ops.append(f"resample {d.key}: {old:g} -> {new[d.key]:g}")
            else:
                new[d.key] = perturb_value(old, d, rng, steps)
                ops.append(f"perturb {d.key}: {old:g} -> {new[d.key]:g} ({d.space})")
    for d in dims:  # keep the config's types: an int key stays int, a float key float
        if not d.integer and isinstance(params[d.key], int):
            new[d.key] = float(new[d.key])
    changed = [d.key for d in dims if new[d.key] != params[d.key]]
    return new, changed, ops
