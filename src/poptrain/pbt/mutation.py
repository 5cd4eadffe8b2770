"""Hyperparameter mutation: a registry of named operators (no ``eval``) and a pure, seeded ``mutate``.

Operators (the IsaacGymEnvs ``pbt/mutation.py`` math):

- ``mutate_float``: multiply or divide (probability 1/2 each) by ``U(change_min, change_max)``.
- ``mutate_float_min_1``: ``mutate_float``, then at least 1.
- ``mutate_eps_clip``: ``mutate_float``, then clamped to [0.01, 0.3].
- ``mutate_mini_epochs``: +1 or -1 (probability 1/2 each), clamped to [1, 8], integer.
- ``mutate_discount``: ``mutate_float`` of ``1 - x`` with the fixed, conservative factor range [1.1, 1.2]
  (large changes of gamma/tau change the critic's targets a lot), clamped to [0, 1].

A mutation spec maps a full dotted config key to either an operator name (``"mutate_float"``) or a mapping
``{op, min, max, integer, log, zero}``:

- ``min`` / ``max``: clamp bounds; when given they replace the operator's built-in bounds.
- ``integer``: round the result; a rounded value equal to the old one steps by 1 in the drawn direction, so an
  integer parameter (e.g. 3 x 1.1) still moves.
- ``log``: draw the factor log-uniformly in [change_min, change_max] instead of uniformly.
- ``zero`` (the zero rule): multiplication cannot move 0, so an operator that meets exactly 0 acts on ``zero``
  instead (default ``min`` when ``min > 0``, else ``DEFAULT_ZERO_BASE`` = 1e-4): a parameter at 0 (e.g.
  ``entropy_coef: 0.0``) moves to roughly ``zero`` times or over the factor, and can shrink back towards 0.
- ``space`` (``log`` | ``log1m`` | ``linear``; default: ``linear`` for integer keys, ``log1m`` for
  ``mutate_discount``, ``log`` when the range is non-negative, else ``linear``) and ``init: [lo, hi]`` (the initial distribution, default
  ``[min, max]``): used by the search strategies of ``poptrain.pbt.explore`` (perturb, resample, PB2) and the
  initial sample of ``poptrain.pbt.priors``; the operators above ignore them.

``mutate`` draws every random number from the injected ``random.Random`` only: same seed, same result.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Base an operator uses in place of an exact 0 (the zero rule) when the key gives neither ``zero`` nor ``min > 0``.
DEFAULT_ZERO_BASE = 1e-4

#: An operator's raw math: ``fn(x, rng, change_min, change_max, log) -> new x`` (bounds are applied afterwards).
OperatorFn = Callable[[float, random.Random, float, float, bool], float]


@dataclass(frozen=True)
class Operator:
    """A named mutation operator with its built-in bounds."""

    name: str  # registry name used in mutation specs
    fn: OperatorFn  # the raw math, without bounds
    min: float | None = None  # built-in lower bound (a spec's ``min`` replaces it)
    max: float | None = None  # built-in upper bound (a spec's ``max`` replaces it)
    integer: bool = False  # built-in integer rounding (a spec's ``integer: true`` adds it)
    zero_rule: bool = True  # apply the zero rule (False when the operator handles 0 itself)
    doc: str = ""  # one line for error messages and docs

    def __call__(
        self,
        x: float,
        rng: random.Random,
        change_min: float,
        change_max: float,
        spec: MutationSpec | None = None,
    ) -> float | int:
        """Mutate one value with this operator, the key's spec (bounds, integer, log, zero) applied."""
        spec = spec or MutationSpec(op=self.name)
        lo = spec.min if spec.min is not None else self.min
        hi = spec.max if spec.max is not None else self.max
        integer = spec.integer or self.integer
        base = float(x)
        if base == 0 and self.zero_rule:  # the zero rule: act on a small base instead of an unmovable 0
            base = (
                spec.zero
                if spec.zero is not None
                else (lo if lo is not None and lo > 0 else DEFAULT_ZERO_BASE)
            )
        new: float | int = self.fn(base, rng, change_min, change_max, spec.log)
        if integer:
            rounded = int(round(new))
            if rounded == int(round(x)) and new != x:
                rounded += 1 if new > x else -1
            new = rounded
        if lo is not None and new < lo:
            new = type(new)(math.ceil(lo)) if integer else lo
        if hi is not None and new > hi:
            new = type(new)(math.floor(hi)) if integer else hi
        return int(new) if integer else float(new)


@dataclass(frozen=True)
class MutationSpec:
    """How one key mutates (parsed from a string operator name or a mapping)."""

    op: str  # operator name (a key of OPERATORS)
    min: float | None = None  # lower clamp (replaces the operator's built-in bound)
    max: float | None = None  # upper clamp (replaces the operator's built-in bound)
    integer: bool = False  # round to int, stepping by at least 1
    log: bool = False  # draw the factor log-uniformly
    zero: float | None = None  # base used instead of an exact 0 (the zero rule)
    space: str | None = None  # search space of pbt.explore (log | log1m | linear; None = chosen by explore)
    init: tuple[float, float] | None = None  # initial distribution's range [lo, hi] (None = [min, max])


# ----------------------------------------------------------------------------------------------------------
# Operator math
# ----------------------------------------------------------------------------------------------------------
def _factor(rng: random.Random, change_min: float, change_max: float, log: bool) -> float:
    if log:
        return math.exp(rng.uniform(math.log(change_min), math.log(change_max)))
    return rng.uniform(change_min, change_max)


def _float(x: float, rng: random.Random, change_min: float, change_max: float, log: bool) -> float:
    factor = _factor(rng, change_min, change_max, log)
    return x / factor if rng.random() < 0.5 else x * factor


def _mini_epochs(x: float, rng: random.Random, change_min: float, change_max: float, log: bool) -> float:
    return x + 1 if rng.random() < 0.5 else x - 1


def _discount(x: float, rng: random.Random, change_min: float, change_max: float, log: bool) -> float:
    inv = 1.0 - x
    if inv == 0:  # gamma == 1: the zero rule on 1 - gamma
        inv = DEFAULT_ZERO_BASE
    return 1.0 - _float(inv, rng, 1.1, 1.2, log)


#: name -> Operator (callable). Add more with ``register_operator``.
OPERATORS: dict[str, Operator] = {}


def register_operator(
    name: str,
    fn: OperatorFn,
    *,
    min: float | None = None,
    max: float | None = None,
    integer: bool = False,
    zero_rule: bool = True,
    doc: str = "",
    replace: bool = False,
) -> Operator:
    """Register ``fn`` under ``name`` (ValueError if the name is taken and ``replace`` is False)."""
    if not name.isidentifier():
        raise ValueError(f"operator name must be an identifier, got {name!r}")
    if name in OPERATORS and not replace:
        raise ValueError(f"mutation operator {name!r} is already registered")
    op = Operator(name=name, fn=fn, min=min, max=max, integer=integer, zero_rule=zero_rule, doc=doc)
    OPERATORS[name] = op
    return op


register_operator("mutate_float", _float, doc="x * or / U(change_min, change_max)")
register_operator("mutate_float_min_1", _float, min=1.0, doc="mutate_float, then >= 1")
register_operator("mutate_eps_clip", _float, min=0.01, max=0.3, doc="mutate_float, clamped to [0.01, 0.3]")
register_operator(
    "mutate_mini_epochs", _mini_epochs, min=1, max=8, integer=True, doc="+-1, clamped to [1, 8]"
)
register_operator(
    "mutate_discount",
    _discount,
    min=0.0,
    max=1.0,
    zero_rule=False,
    doc="1 - x mutated by a factor in [1.1, 1.2]",
)


def known_operators() -> list[str]:
    return sorted(OPERATORS)


# ----------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------
_SPEC_KEYS = ("op", "min", "max", "integer", "log", "zero", "space", "init")
SPACES = ("log", "log1m", "linear")


def parse_spec(key: str, value: Any) -> tuple[MutationSpec | None, list[str]]:
    """Parse one key's mutation spec; return (spec or None, every problem found)."""
    problems: list[str] = []
    if isinstance(value, str):
        value = {"op": value}
    if not isinstance(value, Mapping):
        return None, [
            f"mutation[{key!r}]: expected an operator name or a mapping {{op, min, max, ...}}, got {value!r}"
        ]
    unknown = sorted(set(map(str, value)) - set(_SPEC_KEYS))
    if unknown:
        problems.append(f"mutation[{key!r}]: unknown fields {unknown} (valid: {list(_SPEC_KEYS)})")
    op = value.get("op")
    if op not in OPERATORS:
        problems.append(f"mutation[{key!r}]: unknown operator {op!r} (known: {', '.join(known_operators())})")
    nums: dict[str, float | None] = {}
    for name in ("min", "max", "zero"):
        v = value.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            problems.append(f"mutation[{key!r}].{name}: expected a finite number, got {v!r}")
            v = None
        nums[name] = None if v is None else float(v)
    lo, hi, zero = nums["min"], nums["max"], nums["zero"]
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"mutation[{key!r}]: min={lo:g} is greater than max={hi:g}")
    if zero is not None and zero == 0:
        problems.append(f"mutation[{key!r}].zero: must be non-zero (it replaces an exact 0), got 0")
    flags: dict[str, bool] = {}
    for name in ("integer", "log"):
        v = value.get(name, False)
        if not isinstance(v, bool):
            problems.append(f"mutation[{key!r}].{name}: expected true or false, got {v!r}")
            v = False
        flags[name] = v
    space = value.get("space")
    if space is not None and space not in SPACES:
        problems.append(f"mutation[{key!r}].space: expected one of {', '.join(SPACES)}, got {space!r}")
    init = _parse_init(key, value.get("init"), problems)
    if problems:
        return None, problems
    return MutationSpec(op=str(op), min=lo, max=hi, zero=zero, space=space, init=init, **flags), []


def _parse_init(key: str, v: Any, problems: list[str]) -> tuple[float, float] | None:
    """``init: [lo, hi]`` with finite numbers, lo <= hi (None when absent)."""
    if v is None:
        return None
    seq = v if isinstance(v, (list, tuple)) or (hasattr(v, "__len__") and hasattr(v, "__getitem__")) else None
    if seq is None or isinstance(v, (str, Mapping)) or len(seq) != 2:
        problems.append(f"mutation[{key!r}].init: expected [lo, hi], got {v!r}")
        return None
    lo, hi = seq[0], seq[1]
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in (lo, hi)):
        problems.append(f"mutation[{key!r}].init: expected two finite numbers, got {list(seq)!r}")
        return None
    if lo > hi:
        problems.append(f"mutation[{key!r}].init: lo={lo:g} is greater than hi={hi:g}")
        return None
    return (float(lo), float(hi))


def parse_specs(spec: Mapping[str, Any]) -> dict[str, MutationSpec]:
    """Parse a whole mutation mapping; ValueError listing every problem."""
    out: dict[str, MutationSpec] = {}
    problems: list[str] = []
    for key, value in spec.items():
        parsed, errs = parse_spec(str(key), value)
        problems += errs
        if parsed is not None:
            out[str(key)] = parsed
    if problems:
        raise ValueError("; ".join(problems))
    return out


# ----------------------------------------------------------------------------------------------------------
# mutate
# ----------------------------------------------------------------------------------------------------------
def mutate(
    params: Mapping[str, Any],
    spec: Mapping[str, Any],
    rng: random.Random,
    mutation_rate: float,
    change_min: float,
    change_max: float,
) -> tuple[dict[str, Any], list[str]]:
    """Return (new params, keys whose value changed). Each key of ``spec`` mutates with probability
    ``mutation_rate`` (one ``rng.random()`` per key, in spec order); keys of ``params`` not in ``spec`` pass
    through unchanged. ValueError when a spec key is missing from ``params`` or its value is not a number."""
    specs = {k: (v if isinstance(v, MutationSpec) else None) for k, v in spec.items()}
    to_parse = {k: v for k, v in spec.items() if specs[k] is None}
    specs.update(parse_specs(to_parse))
    missing = [k for k in specs if k not in params]
    if missing:
        raise ValueError(f"mutate: params have no value for {missing} (have: {sorted(params)})")
    new = dict(params)
    changed: list[str] = []
    for key, s in specs.items():
        assert s is not None
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"mutate: {key}={value!r} is not a number")
        if rng.random() >= mutation_rate:
            continue
        mutated = OPERATORS[s.op](value, rng, change_min, change_max, s)
        if isinstance(value, int) and not s.integer and not OPERATORS[s.op].integer:
            mutated = float(mutated)
        new[key] = mutated
        if mutated != value:
            changed.append(key)
    return new, changed
