"""poptrain.pbt.selection: each replacement rule with scripted scores (ties, N<=2, all-equal, NaN, missing)."""

from __future__ import annotations

import math
import random

import pytest

from poptrain.pbt.params import PbtSettings
from poptrain.pbt.selection import Candidate, candidates_from_metas, decide, rank

NAN = math.nan


def pop(*objectives, ages=None):
    """Candidates 0..n-1 with the given objectives (None = member absent)."""
    ages = ages or {}
    return [
        Candidate(member=i, objective=o, iteration=5, frames=1000 * i, age_s=ages.get(i, 1.0))
        for i, o in enumerate(objectives)
        if o is not None
    ]


def P(**kw):
    """Validated settings; each rule's own keys (e.g. threshold_std) are flat pbt.* keys, as in the config."""
    return PbtSettings.from_cfg({"replace_rule": "fraction", **kw})


def decisions(member, population, params, seeds=range(40)):
    return {decide(member, population, params, random.Random(s)) for s in seeds}


def leaders_drawn(member, population, params, seeds=range(60)):
    return {decide(member, population, params, random.Random(s)).leader for s in seeds}


# ---------------------------------------------------------------------------------------------------------
# fraction (IsaacGymEnvs)
# ---------------------------------------------------------------------------------------------------------
FRACTION = P(replace_rule="fraction", num_policies=8)  # worst ceil(0.125*8)=1, best ceil(0.3*8)=3


def test_fraction_worst_exploits_one_of_the_best():
    population = pop(10, 9, 8, 7, 6, 5, 4, 1)
    d = decide(7, population, FRACTION, random.Random(0))
    assert d.action == "exploit" and d.leader in {0, 1, 2}
    assert leaders_drawn(7, population, FRACTION) == {0, 1, 2}
    assert {d.action for d in decisions(6, population, FRACTION)} == {"keep"}
    assert {d.action for d in decisions(0, population, FRACTION)} == {"keep"}


def test_fraction_small_lead_mutates_instead():
    # trimmed std is 0 (the lowest 20% removed), abs cut 0.05 * 10 = 0.5 > lead 0.1
    population = pop(10, 10, 10, 10, 10, 10, 10, 9.9)
    d = decide(7, population, FRACTION, random.Random(0))
    assert d.action == "mutate" and d.leader is None and "lead too small" in d.reason
    # with the absolute threshold off, the same lead is enough
    assert (
        decide(7, population, P(num_policies=8, replace_threshold_frac_absolute=0.0), random.Random(0)).action
        == "exploit"
    )


def test_fraction_std_threshold_uses_population_without_outliers():
    # N=6: worst 2 slots [4, 5], leader from the best 1 (member 0 = 9). Own (member 4) = 5: lead 4.
    # std without the lowest floor(0.2*6)=1 outlier: pstdev([5,6,7,8,9]) = 1.41; with it ~39.7.
    keys = dict(
        num_policies=6,
        replace_fraction_worst=0.34,
        replace_fraction_best=0.1,
        replace_threshold_frac_std=1.5,
        replace_threshold_frac_absolute=0.0,
    )
    params = P(**keys)
    population = pop(9, 8, 7, 6, 5, -100)
    d = decide(4, population, params, random.Random(0))
    assert d.action == "exploit" and d.leader == 0  # cut 1.5 * 1.41 = 2.1 < 4 (untrimmed cut would be 60)
    strict = P(**{**keys, "replace_threshold_frac_std": 3.0})  # cut 4.24 > 4
    assert decide(4, population, strict, random.Random(0)).action == "mutate"


def test_fraction_all_equal_is_deterministic():
    population = pop(*([5.0] * 8))
    # ties rank by member index: member 7 is the worst slot; lead 0 -> mutate, everyone else keeps
    assert {(d.action, d.leader) for d in decisions(7, population, FRACTION)} == {("mutate", None)}
    for m in range(7):
        assert {d.action for d in decisions(m, population, FRACTION)} == {"keep"}


def test_fraction_ties_break_by_member_index():
    population = pop(10, 10, 5, 5, 5, 5, 5, 5)
    assert [c.member for c in rank(population, FRACTION)] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert decide(7, population, FRACTION, random.Random(0)).action == "exploit"
    assert decide(2, population, FRACTION, random.Random(0)).action == "keep"


def test_fraction_nan_and_missing_members_never_lead_and_fill_worst_slots():
    population = pop(NAN, 9, 8, 7, 6, 5, 4, 1)
    params = P(num_policies=8, replace_fraction_worst=0.25)  # worst 2 slots: [7, 0(NaN)]
    assert decide(0, population, params, random.Random(0)).action == "keep"  # own objective unknown
    assert leaders_drawn(7, population, params) == {1, 2, 3}
    assert decide(6, population, params, random.Random(0)).action == "keep"
    # members 5..7 absent: they fill the worst slots, so member 4 is not worst with 1 worst slot
    present = pop(10, 9, 8, 7, 6)
    assert decide(4, present, FRACTION, random.Random(0)).action == "keep"
    assert (
        decide(4, present, P(num_policies=8, replace_fraction_worst=0.5), random.Random(0)).action
        == "exploit"
    )


def test_fraction_needs_enough_data_and_n_le_2_keeps():
    assert decide(3, pop(10, 9, 8, 1), FRACTION, random.Random(0)).action == "keep"  # 4 valid of 8: not > 4
    assert "not enough data" in decide(3, pop(10, 9, 8, 1), FRACTION, random.Random(0)).reason
    assert decide(1, pop(10, 1), P(num_policies=2), random.Random(0)).action == "keep"
    assert decide(0, pop(1), P(num_policies=1), random.Random(0)).action == "keep"


def test_stale_member_counts_as_absent():
    params = P(num_policies=8, stale_after_s=100.0)
    population = pop(100, 9, 8, 7, 6, 5, 4, 1, ages={0: 500.0})
    assert 0 not in leaders_drawn(7, population, params)
    assert [c.member for c in rank(population, params)][:1] == [1]


def test_own_missing_and_duplicates():
    assert decide(3, pop(10, 9, 8), FRACTION, random.Random(0)).action == "keep"
    with pytest.raises(ValueError, match="twice"):
        decide(0, pop(1, 2) + pop(3), FRACTION, random.Random(0))


# ---------------------------------------------------------------------------------------------------------
# threshold (Isaac Lab)
# ---------------------------------------------------------------------------------------------------------
THRESHOLD_KEYS = dict(replace_rule="threshold", threshold_std=0.1, threshold_abs=0.05)
THRESHOLD = P(**THRESHOLD_KEYS)


def test_threshold_underperformer_exploits_a_leader():
    population = pop(10, 5, 5, 5, 0)  # mean 5, std 3.16: cuts (4.68, 5.32)
    d = decide(4, population, THRESHOLD, random.Random(0))
    assert d.action == "exploit" and d.leader == 0
    for m in (0, 1, 2, 3):
        assert decide(m, population, THRESHOLD, random.Random(0)).action == "keep"


def test_threshold_underperformer_without_leader_mutates():
    population = pop(5, 5, 5, 3)  # mean 4.5, std .87, A = 1: cuts (3.5, 5.5): nobody above 5.5
    d = decide(3, population, P(**{**THRESHOLD_KEYS, "threshold_abs": 1.0}), random.Random(0))
    assert d.action == "mutate" and d.leader is None


def test_threshold_all_equal_nan_and_small_n():
    assert {decide(m, pop(*[3.0] * 5), THRESHOLD, random.Random(0)).action for m in range(5)} == {"keep"}
    population = pop(NAN, 5, 5, 5, 0)  # NaN is left out of the mean and never leads
    assert leaders_drawn(4, population, THRESHOLD) == {1, 2, 3}
    assert decide(0, population, THRESHOLD, random.Random(0)).action == "keep"
    assert decide(0, pop(1.0), THRESHOLD, random.Random(0)).action == "keep"
    assert decide(1, pop(10, 0), THRESHOLD, random.Random(0)).leader == 0  # N=2: cuts (4.5, 5.5)
    assert decide(0, pop(10, 0), THRESHOLD, random.Random(0)).action == "keep"


# ---------------------------------------------------------------------------------------------------------
# quantile (Ray Tune)
# ---------------------------------------------------------------------------------------------------------
QUANTILE = P(replace_rule="quantile", quantile_fraction=0.25)


def test_quantile_bottom_exploits_top():
    population = pop(8, 7, 6, 5, 4, 3, 2, 1)  # q = 2
    assert leaders_drawn(7, population, QUANTILE) == {0, 1}
    assert leaders_drawn(6, population, QUANTILE) == {0, 1}
    assert decide(5, population, QUANTILE, random.Random(0)).action == "keep"
    # q capped at n/2
    assert leaders_drawn(3, pop(4, 3, 2, 1), P(replace_rule="quantile", quantile_fraction=0.5)) == {0, 1}


def test_quantile_small_n_all_equal_nan():
    assert decide(1, pop(10, 1), QUANTILE, random.Random(0)).leader == 0  # n=2: q=1
    assert decide(0, pop(10), QUANTILE, random.Random(0)).action == "keep"
    equal = pop(2, 2, 2, 2)  # q = 1: member 3 is bottom by index, top member is not better
    assert decide(3, equal, QUANTILE, random.Random(0)).action == "mutate"
    assert decide(0, equal, QUANTILE, random.Random(0)).action == "keep"
    population = pop(NAN, 7, 6, 5, 4)  # NaN never ranks: n=4, q=1, top=1, bottom=4
    assert leaders_drawn(4, population, QUANTILE) == {1}


def test_decisions_are_seeded():
    population = pop(10, 9, 8, 7, 6, 5, 4, 1)
    for rule in ("fraction", "threshold", "quantile"):
        params = P(replace_rule=rule, num_policies=8)
        assert decide(7, population, params, random.Random(3)) == decide(
            7, population, params, random.Random(3)
        )


def test_candidates_from_metas():
    class M:
        member, objective, iteration, frames, time = 2, 1.5, 4, 100, 90.0

    (c,) = candidates_from_metas([M()], now=100.0)
    assert c == Candidate(2, 1.5, 4, 100, 10.0)
