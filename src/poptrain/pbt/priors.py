"""Honest priors: the initial population as a space-filling sample, and keys that cannot act.

``pbt.initial: sample``: member 0 keeps the config's own values (the default configuration is always one of
the population); members 1..N-1 take the rows of one Latin hypercube sample (``scipy.stats.qmc``) of the keys'
priors (uniform in each key's search space over its ``init`` range, see ``poptrain.pbt.explore``). Every member
computes the same sample from ``pbt.sample_seed``, so no member needs to talk to another to get its row.
``pbt.initial_width`` < 1 narrows each key's sample to that fraction of its prior around the config's value
(``initial_sample``'s ``center``/``width``).
``pbt.initial: mutate`` (the legacy behaviour) mutates the config's values once per member instead.

``dead_keys``: a mutated key whose value the training loop overwrites cannot act, e.g. ``learning_rate``
under rl_games' ``adaptive`` schedule (it moves the rate from 2e-6 to 1e-2 within ~10 epochs, see
docs/tasks.md) or ``linear`` schedule, ``kl_threshold`` under any other schedule, ``entropy_coef`` under
``schedule_entropy``. The member warns once
per such key at start-up, naming the schedule; the search keeps it (a user may want it anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from poptrain.pbt.explore import Dim

log = logging.getLogger(__name__)

TRAIN_PREFIX = "train.params.config."


def initial_sample(
    dims: Sequence[Dim],
    num_policies: int,
    seed: int,
    center: Mapping[str, Any] | None = None,
    width: float = 1.0,
) -> list[dict[str, float | int]]:
    """Rows for members 1..num_policies-1 (index 0 of the result is member 1): a Latin hypercube over the priors.

    A Latin hypercube puts exactly one member in each of N-1 equal slices of every key's prior, for any N
    (a Sobol sequence balances only at powers of 2).

    ``width`` < 1 with ``center`` (member 0's values, the config's): each key is sampled from a box of
    ``width`` x its prior's width (in the key's search space) around the center's position, shifted to lie
    inside the prior, so the population starts near the configuration the user chose. With width 1 the box is
    the whole prior. Why: on short budgets most of a wide prior is bad (issue 14's evaluation: random search
    over the declared ranges averaged -780 on PendulumGeneric where the default averaged -339, and a full-range
    sample put 3 of 4 members there), and PBT can only copy the good member once the objective tells.
    """
    from scipy.stats import qmc

    n = num_policies - 1
    if n <= 0 or not dims:
        return []
    unit = qmc.LatinHypercube(d=len(dims), seed=seed).random(n)
    boxes = [_box(d, center, width) for d in dims]
    rows: list[dict[str, float | int]] = []
    for point in unit:
        row: dict[str, float | int] = {}
        for d, (lo, hi), u in zip(dims, boxes, point, strict=True):
            row[d.key] = d.from_unit(lo + float(u) * (hi - lo))
        rows.append(row)
    return rows


def _box(dim: Dim, center: Mapping[str, Any] | None, width: float) -> tuple[float, float]:
    """The sampled interval of one key in unit coordinates: the prior, or ``width`` of it around the center."""
    lo, hi = dim.prior_unit()
    if width >= 1.0 or center is None or dim.key not in center:
        return lo, hi
    span = width * (hi - lo)
    c = min(hi, max(lo, dim.to_unit(float(center[dim.key]))))
    start = min(max(c - span / 2.0, lo), hi - span)
    return start, start + span


def dead_keys(keys: Sequence[str], train_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, why) for each mutated key the training loop overwrites (``train_config`` = train.params.config)."""
    schedule = str(train_config.get("lr_schedule") or "")
    out: list[tuple[str, str]] = []
    for key in keys:
        name = key[len(TRAIN_PREFIX) :] if key.startswith(TRAIN_PREFIX) else None
        if name == "learning_rate" and schedule in ("adaptive", "linear"):
            what = (
                "the adaptive schedule moves the rate by its KL rule every epoch (2e-6 to 1e-2 within ~10 epochs)"
                if schedule == "adaptive"
                else "the linear schedule sets the rate every epoch"
            )
            out.append((key, f"lr_schedule={schedule}: {what}; mutating it has no lasting effect"))
        elif name == "kl_threshold" and schedule != "adaptive":
            out.append(
                (key, f"lr_schedule={schedule or 'none'}: only the adaptive schedule reads kl_threshold")
            )
        elif name == "entropy_coef" and bool(train_config.get("schedule_entropy", False)):
            out.append(
                (
                    key,
                    f"schedule_entropy=True (lr_schedule={schedule or 'none'}): the schedule sets entropy_coef",
                )
            )
    return out


def warn_dead_keys(keys: Sequence[str], train_config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Log one warning per dead key; return them."""
    found = dead_keys(keys, train_config)
    for key, why in found:
        log.warning("PBT: mutated key %s cannot act: %s", key, why)
    return found
