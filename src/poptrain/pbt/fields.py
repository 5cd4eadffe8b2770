"""Typed settings fields: each field's default, bounds and doc in one place, checked by one loop.

A settings dataclass declares ``name: float = setting(0.5, "what it does", lo=0.0, hi=1.0)``; ``check_fields``
validates a raw config block against every such field (type from the annotation, then bounds or choices) and
reports each problem naming the value and what would be valid. ``PbtSettings`` (pbt/params.py) and every
replacement rule's settings (pbt/selection.py) are built this way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()


def setting(
    default: Any = _MISSING,
    doc: str = "",
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None,
    non_empty: bool = False,
    below: str = "",
    custom: bool = False,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its doc and bounds: ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), ``choices``
    (a tuple, or a callable returning one, for choices another module registers), ``non_empty`` strings,
    ``below``: an integer in ``0..<that field> - 1``; ``custom``: checked by the owner, not by ``check_fields``."""
    meta = {
        "doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "non_empty": non_empty,
        "below": below, "custom": custom,
    }  # fmt: skip
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def choices_of(f: dataclasses.Field[Any]) -> tuple[Any, ...] | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def as_number(v: Any) -> int | float | None:
    """int/float as is, numeric strings ('3e-4', which YAML 1.1 leaves a string) converted; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return None
    return None


def check_fields(
    cls: type, raw: Mapping[str, Any], values: dict[str, Any], problems: list[str], prefix: str = "pbt."
) -> None:
    """Validate every non-custom field of ``cls`` from ``raw`` (absent: the field's default) into ``values``
    (an invalid value is replaced by the default, so later checks still run) and append one line per problem."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("custom"):
            continue
        value = raw[f.name] if f.name in raw else default_of(f)
        checked, problem = _check(f, value, values, prefix + f.name)
        if problem:
            problems.append(problem)
        values[f.name] = default_of(f) if checked is _MISSING else checked


def _check(f: dataclasses.Field[Any], v: Any, values: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """(value to keep or _MISSING, problem or '') for one field; the field's annotation names its type."""
    meta, kind = f.metadata, str(f.type)
    choices = choices_of(f)
    if choices is not None:
        if v not in choices:
            return _MISSING, f"{key}={v!r}: expected one of {', '.join(map(str, choices))}"
        return v, ""
    if kind == "bool":
        return (v, "") if isinstance(v, bool) else (False, f"{key}={v!r}: expected true or false")
    if kind == "str":
        if not isinstance(v, str) or (meta["non_empty"] and not v.strip()):
            return _MISSING, f"{key}={v!r}: expected a {'non-empty ' if meta['non_empty'] else ''}string"
        return v, ""
    if kind == "int":
        return _check_int(v, meta, values, key)
    if kind == "float":
        return _check_float(v, meta, key)
    raise TypeError(f"{key}: no generic check for type {kind!r} (mark it custom=True)")


def _check_int(v: Any, meta: Mapping[str, Any], values: Mapping[str, Any], key: str) -> tuple[Any, str]:
    lo, hi, what = meta["lo"], meta["hi"], ""
    if meta["below"]:  # an index into another field's count, e.g. policy_idx in 0..num_policies-1
        n = values[meta["below"]]
        hi, what = max(n - 1, 0), f" in 0..{n - 1} ({meta['below']}={n})"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        return _MISSING, f"{key}={v!r}: expected an integer{what}"
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        return v, f"{key}={v}: out of range, valid: {what or rng}"
    return v, ""


def _check_float(v: Any, meta: Mapping[str, Any], key: str) -> tuple[Any, str]:
    lo, hi, lo_open = meta["lo"], meta["hi"], meta["lo_open"]
    number = as_number(v)
    if number is None or not math.isfinite(number):
        return _MISSING, f"{key}={v!r}: expected a finite number"
    low_bad = lo is not None and (number <= lo if lo_open else number < lo)
    if low_bad or (hi is not None and number > hi):
        left = "(" if lo_open else "["
        return float(number), (
            f"{key}={number:g}: out of range, valid: {left}{lo}, {hi if hi is not None else 'inf'}]"
        )
    return float(number), ""


def plain_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` as plain YAML values (tuples as lists) for a Hydra config node."""
    out = {}
    for f in dataclasses.fields(cls):
        value = default_of(f)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
