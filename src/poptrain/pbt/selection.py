"""PURE PBT decisions: from the population table to keep / mutate / exploit for one member. No I/O.

Valid candidates: a finite objective and not stale: finished, or ``age_s <= max(stale_after_s,
stale_interval_factor * interval_s)`` (``interval_s``: the member's own last interval duration, so staleness
follows each member's pace: with hour-long intervals a peer written 40 minutes ago is on time, not stale).
NaN objectives, stale members and members absent from the table never rank as leaders. Ranking is
``poptrain.pbt.ranking.ranked`` (the order status, the report and ``best/`` use too): best-first by objective,
ties to the lower member index, so every decision is deterministic given the injected ``rng`` (used only to
draw a leader).

Rules (``PbtSettings.replace_rule``; registry ``RULES``: a new rule is one function plus its settings dataclass,
registered there; its settings' fields become flat ``pbt.*`` config keys, default/bounds/doc included):

- ``fraction`` (IsaacGymEnvs): the N = ``num_policies`` slots are ranked, absent/invalid members last. Nothing
  happens until more than ``max(2, N // 2)`` members are valid. The worst ``ceil(replace_fraction_worst * N)``
  slots are underperformers; a leader is drawn from the best ``ceil(replace_fraction_best * N)`` valid members
  (not itself). Exploit when ``leader - own`` exceeds both ``replace_threshold_frac_std * std`` (std of the valid
  objectives without the lowest ``floor(0.2 * n)`` outliers) and ``replace_threshold_frac_absolute * |leader|``.
- ``threshold`` (Isaac Lab): over the valid members (>= 2), leaders score
  ``> max(mean + threshold_std * std, mean + threshold_abs)``, underperformers
  ``< min(mean - threshold_std * std, mean - threshold_abs)``; an underperformer exploits a random leader.
- ``quantile`` (Ray Tune): over the valid members (>= 2), q = ``ceil(n * quantile_fraction)`` capped at
  ``floor(n / 2)``; a member in the bottom q exploits a random member of the top q.

Comparison point (``PbtSettings.compare``): ``latest`` (IsaacGymEnvs, Isaac Lab) ranks every member by its newest
objective, however far each has trained. Members run at different speeds (start-up order, mixed hardware, a
restart), so while the population learns fast a member that runs ahead compares its newer window with its
peers' older ones and looks better than it is (PendulumGeneric: a member 3 intervals ahead ranked first while it
learned slowest). ``synch`` (Ray Tune's ``synch``; our time-sliced slots always do this) makes a member that is
ahead wait in the workspace for the fresh members behind it, then ranks every member by its record at the same
frame count (``records_at``).

When "mutate" (explore its own hyperparameters, keep its own weights) is returned: the member IS an
underperformer under the rule, but no leader is worth copying: under ``fraction`` the drawn leader's lead is
within the thresholds (IsaacGymEnvs' "replace with self"), under ``threshold`` no member clears the upper cut,
under ``quantile`` the drawn top member is not strictly better (all-equal objectives). Otherwise "keep".
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from poptrain.pbt.fields import setting

if TYPE_CHECKING:  # params imports this module's RULES
    from poptrain.pbt.params import PbtSettings
from poptrain.pbt.ranking import interval_of, ranked, stale_limit_s

Action = Literal["keep", "mutate", "exploit"]

COMPARE_MODES = ("latest", "synch")


@dataclass(frozen=True)
class Candidate:
    """One row of the population table."""

    member: int  # policy_idx
    objective: float  # window mean of the objective (NaN = unknown)
    iteration: int  # the member's PBT iteration
    frames: int  # the member's own frame counter
    age_s: float = 0.0  # seconds since its metadata was written
    interval_s: float = 0.0  # wall seconds of the member's own last PBT interval (0 = unknown)
    finished: bool = False  # its final metadata: never stale (see ``poptrain.pbt.ranking``)


@dataclass(frozen=True)
class Decision:
    """What one member should do now."""

    action: Action  # keep | mutate (own weights, new params) | exploit (leader's weights, new params)
    leader: int | None  # the member to copy from (exploit only)
    reason: str  # one human-readable line with the numbers behind the decision
    waiting: bool = False  # True when no decision was possible (too few valid members, own objective unknown)


def candidates_from_metas(metas: Iterable[Any], now: float) -> list[Candidate]:
    """Candidates from MemberMeta-like objects (member, objective, iteration, frames, time, extra)."""
    return [
        Candidate(
            m.member,
            float(m.objective),
            m.iteration,
            m.frames,
            max(0.0, now - m.time),
            interval_of(m),
            bool(getattr(m, "finished", False)),
        )
        for m in metas
    ]


def records_at(metas: Mapping[int, Any], record_at: Callable[[int, int], Any], frames: int) -> dict[int, Any]:
    """``pbt.compare: synch``: each member's newest metadata, with the objective (and its window figures) of its
    record at ``frames`` when it has trained past them (``record_at(member, frames)``: its newest record at or
    before ``frames``). A record whose objective was carried from the member it copied (``objective_source`` in
    its extra: no finished episode of its own yet) takes that member's record at ``frames`` instead: written
    before the wait, it may hold the source's objective of an interval ago. Everything else (time, frames,
    checkpoint, params) stays the newest record's: staleness is judged on it and an exploit copies the leader's
    newest weights."""
    out: dict[int, Any] = {}
    for member, meta in metas.items():
        record = record_at(member, frames) if meta.frames > frames else meta
        record = _own_or_source(member, record if record is not None else meta, metas, record_at, frames)
        if record is meta:
            out[member] = meta
            continue
        extra = dict(getattr(meta, "extra", None) or {})
        theirs = getattr(record, "extra", None) or {}
        for key in WINDOW_KEYS:
            extra.pop(key, None)
            if key in theirs:
                extra[key] = theirs[key]
        out[member] = dataclasses.replace(meta, objective=record.objective, extra=extra)
    return out


def _own_or_source(
    member: int, record: Any, metas: Mapping[int, Any], record_at: Callable[[int, int], Any], frames: int
) -> Any:
    source = (getattr(record, "extra", None) or {}).get("objective_source")  # workspace data: checked
    if isinstance(source, bool) or not isinstance(source, int) or source == member or source not in metas:
        return record
    theirs = record_at(source, frames)
    if theirs is None or not math.isfinite(float(theirs.objective)):
        return record
    return theirs


#: the window figures a record carries with its objective (``poptrain.pbt.search.meta_extra``)
WINDOW_KEYS = ("objective_se", "objective_n", "objective_window", "objective_binomial")


def is_stale(c: Candidate, params: PbtSettings) -> bool:
    """Not finished and older than its own staleness limit (the rule of ``poptrain.pbt.ranking``)."""
    return not c.finished and c.age_s > stale_limit_s(
        c.interval_s, params.stale_after_s, params.stale_interval_factor
    )


def is_valid(c: Candidate, params: PbtSettings) -> bool:
    """May rank (and lead): finite objective, not stale."""
    return math.isfinite(c.objective) and not is_stale(c, params)


def population_counts(population: Sequence[Candidate], params: PbtSettings) -> dict[str, int]:
    """How the ``num_policies`` slots stand: valid, missing (no metadata yet, e.g. not yet past start_after or
    not started), stale (older than its limit), no_objective (fresh metadata, objective not known yet)."""
    present = {c.member for c in population}
    stale = sum(1 for c in population if is_stale(c, params))
    no_objective = sum(1 for c in population if not is_stale(c, params) and not math.isfinite(c.objective))
    valid = sum(1 for c in population if is_valid(c, params))
    missing = sum(1 for m in range(params.num_policies) if m not in present)
    return {"valid": valid, "missing": missing, "stale": stale, "no_objective": no_objective}


def rank(population: Sequence[Candidate], params: PbtSettings) -> list[Candidate]:
    """Valid candidates best-first: the fresh group of ``ranking.ranked`` (stale members never lead)."""
    return [c for c in ranked(population, lambda c: is_stale(c, params)) if not is_stale(c, params)]


def decide(member: int, population: Sequence[Candidate], params: PbtSettings, rng: random.Random) -> Decision:
    """Keep, mutate or exploit for ``member`` under ``params.replace_rule``."""
    seen: set[int] = set()
    for c in population:
        if c.member in seen:
            raise ValueError(f"population lists member {c.member} twice")
        seen.add(c.member)
    own = next((c for c in population if c.member == member), None)
    if own is None:
        return Decision("keep", None, f"member {member} has no metadata in the population table yet", True)
    if not is_valid(own, params):
        return Decision(
            "keep",
            None,
            f"own objective is not known yet ({own.objective}) or stale ({own.age_s:.0f} s)",
            True,
        )
    ranked = rank(population, params)
    rule = RULES.get(params.replace_rule)
    if rule is None:
        raise ValueError(f"unknown replace_rule {params.replace_rule!r} (valid: {', '.join(RULES)})")
    return rule.decide(own, ranked, params.rule_settings[params.replace_rule], params.num_policies, rng)


# ----------------------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FractionSettings:
    """IsaacGymEnvs' rule (``fraction``); defaults are IGE's."""

    replace_fraction_worst: float = setting(
        0.125, "IGE: the worst ceil(frac*N) slots are underperformers", lo=0.0, hi=1.0
    )
    replace_fraction_best: float = setting(
        0.3, "IGE: a leader is drawn from the best ceil(frac*N)", lo=0.0, hi=1.0
    )
    replace_threshold_frac_std: float = setting(
        0.5, "IGE: exploit only if lead > frac * population std", lo=0.0
    )
    replace_threshold_frac_absolute: float = setting(
        0.05, "IGE: ... and lead > frac * |leader objective|", lo=0.0
    )


def _fraction(
    own: Candidate, ranked: list[Candidate], params: FractionSettings, n_slots: int, rng: random.Random
) -> Decision:
    need = max(2, n_slots // 2)
    if len(ranked) <= need:
        return Decision(
            "keep", None, f"not enough data: {len(ranked)} valid members, need more than {need}", True
        )
    # slot order: valid members best-first, then every absent/invalid slot (they fill the worst places)
    valid_ids = [c.member for c in ranked]
    others = sorted(set(range(n_slots)) - set(valid_ids))
    order = valid_ids + others
    n_worst = math.ceil(params.replace_fraction_worst * n_slots)
    n_best = math.ceil(params.replace_fraction_best * n_slots)
    worst = order[-n_worst:] if n_worst > 0 else []
    position = order.index(own.member) + 1 if own.member in order else len(order) + 1
    if own.member not in worst:
        return Decision("keep", None, f"rank {position}/{n_slots} is not among the worst {n_worst}")
    leaders = [c for c in ranked[:n_best] if c.member != own.member]
    if not leaders:
        return Decision(
            "mutate",
            None,
            f"rank {position}/{n_slots} is among the worst, but no leader in the best {n_best}",
        )
    leader = rng.choice(leaders)
    delta = leader.objective - own.objective
    objectives = sorted(c.objective for c in ranked)
    trimmed = objectives[math.floor(0.2 * len(objectives)) :]
    std = statistics.pstdev(trimmed) if len(trimmed) > 1 else 0.0
    std_cut = params.replace_threshold_frac_std * std
    abs_cut = params.replace_threshold_frac_absolute * abs(leader.objective)
    numbers = (
        f"leader {leader.member} ({leader.objective:.4g}) - own ({own.objective:.4g}) = {delta:.4g} vs "
        f"std cut {std_cut:.4g}, abs cut {abs_cut:.4g}"
    )
    if delta > std_cut and delta > abs_cut:
        return Decision("exploit", leader.member, f"rank {position}/{n_slots} among the worst; {numbers}")
    return Decision("mutate", None, f"rank {position}/{n_slots} among the worst, lead too small: {numbers}")


@dataclass(frozen=True)
class ThresholdSettings:
    """Isaac Lab's rule (``threshold``); defaults are Isaac Lab's."""

    threshold_std: float = setting(0.10, "ILab: k in the mean +- k*std cuts", lo=0.0)
    threshold_abs: float = setting(0.05, "ILab: A in the mean +- A cuts", lo=0.0)


def _threshold(
    own: Candidate, ranked: list[Candidate], params: ThresholdSettings, n_slots: int, rng: random.Random
) -> Decision:
    if len(ranked) < 2:
        return Decision("keep", None, f"not enough data: {len(ranked)} valid member(s), need 2", True)
    objectives = [c.objective for c in ranked]
    mean = statistics.fmean(objectives)
    std = statistics.pstdev(objectives)
    upper = max(mean + params.threshold_std * std, mean + params.threshold_abs)
    lower = min(mean - params.threshold_std * std, mean - params.threshold_abs)
    cuts = f"mean {mean:.4g}, std {std:.4g}, cuts ({lower:.4g}, {upper:.4g})"
    if not own.objective < lower:
        return Decision("keep", None, f"own {own.objective:.4g} is not below the lower cut; {cuts}")
    leaders = [c for c in ranked if c.objective > upper and c.member != own.member]
    if not leaders:
        return Decision(
            "mutate", None, f"own {own.objective:.4g} is below the lower cut, but no leader; {cuts}"
        )
    leader = rng.choice(leaders)
    return Decision(
        "exploit",
        leader.member,
        f"own {own.objective:.4g} < lower cut, leader {leader.member} "
        f"({leader.objective:.4g}) > upper cut; {cuts}",
    )


@dataclass(frozen=True)
class QuantileSettings:
    """Ray Tune's rule (``quantile``); default is Ray's."""

    quantile_fraction: float = setting(
        0.25, "Ray: size of the bottom/top quantiles", lo=0.0, hi=0.5, lo_open=True
    )


def _quantile(
    own: Candidate, ranked: list[Candidate], params: QuantileSettings, n_slots: int, rng: random.Random
) -> Decision:
    n = len(ranked)
    if n < 2:
        return Decision("keep", None, f"not enough data: {n} valid member(s), need 2", True)
    q = math.ceil(n * params.quantile_fraction)
    if q > n / 2:
        q = n // 2
    top, bottom = ranked[:q], ranked[n - q :]
    if own.member not in {c.member for c in bottom}:
        return Decision("keep", None, f"not in the bottom {q} of {n}")
    leader = rng.choice(top)
    if leader.objective > own.objective:
        return Decision(
            "exploit",
            leader.member,
            f"bottom {q} of {n}; leader {leader.member} ({leader.objective:.4g}) > own ({own.objective:.4g})",
        )
    return Decision(
        "mutate",
        None,
        f"bottom {q} of {n}, but top member {leader.member} is not better "
        f"({leader.objective:.4g} vs {own.objective:.4g})",
    )


# ----------------------------------------------------------------------------------------------------------
# Registry: name -> rule. Config validation (pbt.replace_rule's choices, the rules' flat pbt.* keys) and the
# Hydra defaults derive from it.
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """A replacement rule: its decision and its settings (a frozen dataclass of ``setting`` fields)."""

    decide: Callable[[Candidate, list[Candidate], Any, int, random.Random], Decision]
    settings: type


RULES: dict[str, Rule] = {
    "fraction": Rule(_fraction, FractionSettings),
    "threshold": Rule(_threshold, ThresholdSettings),
    "quantile": Rule(_quantile, QuantileSettings),
}
