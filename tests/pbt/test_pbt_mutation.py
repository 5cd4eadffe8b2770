"""poptrain.pbt.mutation: operator math, bounds, integer/log handling, the zero rule, seeding."""

from __future__ import annotations

import math
import random

import pytest

from poptrain.pbt import mutation as mut
from poptrain.pbt.mutation import OPERATORS, MutationSpec, mutate, parse_spec, register_operator

LR = "train.params.config.learning_rate"


class ScriptedRng(random.Random):
    """random() and uniform() return scripted values (to pin each branch of an operator)."""

    def __init__(self, randoms, uniforms=()):
        super().__init__(0)
        self._r, self._u = list(randoms), list(uniforms)

    def random(self):
        return self._r.pop(0)

    def uniform(self, a, b):
        u = self._u.pop(0)
        return a + (b - a) * u


def test_registry_has_the_anchor_operators():
    assert {
        "mutate_float",
        "mutate_float_min_1",
        "mutate_eps_clip",
        "mutate_mini_epochs",
        "mutate_discount",
    } <= set(OPERATORS)


def test_mutate_float_multiplies_or_divides():
    op = OPERATORS["mutate_float"]
    # uniform fraction 0.5 -> factor 1.3 in [1.1, 1.5]; random() < 0.5 divides, else multiplies
    assert op(2.0, ScriptedRng([0.1], [0.5]), 1.1, 1.5) == pytest.approx(2.0 / 1.3)
    assert op(2.0, ScriptedRng([0.9], [0.5]), 1.1, 1.5) == pytest.approx(2.0 * 1.3)
    rng = random.Random(1)
    for _ in range(200):
        ratio = op(1.0, rng, 1.1, 1.5)
        assert 1.1 <= ratio <= 1.5 or 1 / 1.5 <= ratio <= 1 / 1.1


def test_clamping_operators():
    assert OPERATORS["mutate_float_min_1"](1.05, ScriptedRng([0.1], [1.0]), 1.1, 1.5) == 1.0
    assert OPERATORS["mutate_eps_clip"](0.28, ScriptedRng([0.9], [1.0]), 1.1, 1.5) == 0.3
    assert OPERATORS["mutate_eps_clip"](0.011, ScriptedRng([0.1], [1.0]), 1.1, 1.5) == 0.01
    assert OPERATORS["mutate_mini_epochs"](8, ScriptedRng([0.1]), 1.1, 1.5) == 8  # +1 clamped to 8
    assert OPERATORS["mutate_mini_epochs"](8, ScriptedRng([0.9]), 1.1, 1.5) == 7
    assert OPERATORS["mutate_mini_epochs"](1, ScriptedRng([0.9]), 1.1, 1.5) == 1
    assert type(OPERATORS["mutate_mini_epochs"](4, ScriptedRng([0.1]), 1.1, 1.5)) is int


def test_mutate_discount_mutates_one_minus_x_conservatively():
    op = OPERATORS["mutate_discount"]
    # factor range is fixed to [1.1, 1.2] whatever change_min/max say
    assert op(0.99, ScriptedRng([0.9], [0.0]), 1.5, 3.0) == pytest.approx(1 - 0.01 * 1.1)
    assert op(0.99, ScriptedRng([0.1], [1.0]), 1.5, 3.0) == pytest.approx(1 - 0.01 / 1.2)
    assert op(0.1, ScriptedRng([0.9], [1.0]), 1.1, 1.5) == 0.0  # 1 - 0.9*1.2 < 0 -> clamped to [0, 1]
    assert 0.999 < op(1.0, random.Random(0), 1.1, 1.5) < 1.0  # gamma == 1 still moves


def test_spec_bounds_replace_builtin_bounds_and_integer_steps():
    spec = MutationSpec(op="mutate_mini_epochs", max=16)
    assert OPERATORS["mutate_mini_epochs"](8, ScriptedRng([0.1]), 1.1, 1.5, spec) == 9
    spec = MutationSpec(op="mutate_float", min=1e-5, max=1e-3)
    assert OPERATORS["mutate_float"](9e-4, ScriptedRng([0.9], [1.0]), 1.1, 1.5, spec) == 1e-3
    # integer: 3 * 1.1 rounds back to 3, so it steps by one in the drawn direction
    spec = MutationSpec(op="mutate_float", integer=True)
    assert OPERATORS["mutate_float"](3, ScriptedRng([0.9], [0.0]), 1.1, 1.5, spec) == 4
    assert OPERATORS["mutate_float"](3, ScriptedRng([0.1], [0.0]), 1.1, 1.5, spec) == 2


def test_log_factor_is_log_uniform():
    spec = MutationSpec(op="mutate_float", log=True)
    rng = ScriptedRng([0.9], [0.5])  # uniform in log space: midpoint = geometric mean
    assert OPERATORS["mutate_float"](1.0, rng, 1.1, 2.0, spec) == pytest.approx(math.sqrt(1.1 * 2.0))


def test_zero_rule_lets_a_zero_parameter_move():
    op = OPERATORS["mutate_float"]
    assert op(0.0, ScriptedRng([0.9], [0.0]), 1.1, 1.5) == pytest.approx(mut.DEFAULT_ZERO_BASE * 1.1)
    spec = MutationSpec(op="mutate_float", min=0.0, zero=1e-3)
    assert op(0.0, ScriptedRng([0.1], [0.0]), 1.1, 1.5, spec) == pytest.approx(1e-3 / 1.1)
    spec = MutationSpec(op="mutate_float", min=0.02)
    assert op(0.0, ScriptedRng([0.9], [0.0]), 1.1, 1.5, spec) == pytest.approx(0.022)
    # through mutate(): entropy_coef 0.0 moves whenever it is selected
    new, changed = mutate({"e": 0.0}, {"e": "mutate_float"}, random.Random(3), 1.0, 1.1, 1.5)
    assert changed == ["e"] and new["e"] > 0


def test_mutate_is_seeded_pure_and_reports_changes():
    params = {LR: 3e-4, "x.mini_epochs": 4, "x.critic_coef": 4, "untouched": "abc"}
    spec = {
        LR: "mutate_float",
        "x.mini_epochs": "mutate_mini_epochs",
        "x.critic_coef": {"op": "mutate_float"},
    }
    a = mutate(params, spec, random.Random(7), 0.8, 1.1, 1.5)
    b = mutate(params, spec, random.Random(7), 0.8, 1.1, 1.5)
    assert a == b
    assert params == {LR: 3e-4, "x.mini_epochs": 4, "x.critic_coef": 4, "untouched": "abc"}  # input untouched
    new, changed = a
    assert new["untouched"] == "abc"
    assert changed == [k for k in spec if new[k] != params[k]]
    assert set(changed) <= set(spec)
    if "x.critic_coef" in changed:
        assert type(new["x.critic_coef"]) is float
    # mutation_rate 0 changes nothing, 1 changes every key
    assert mutate(params, spec, random.Random(1), 0.0, 1.1, 1.5) == (params, [])
    _, all_changed = mutate(params, spec, random.Random(1), 1.0, 1.1, 1.5)
    assert all_changed == list(spec)


def test_mutation_rate_is_respected_statistically():
    rng = random.Random(0)
    hits = sum(bool(mutate({"a": 1.0}, {"a": "mutate_float"}, rng, 0.25, 1.1, 1.5)[1]) for _ in range(2000))
    assert 400 < hits < 600


def test_bad_specs_and_params():
    with pytest.raises(ValueError, match=r"unknown operator 'mutate_flaot'.*mutate_float"):
        mutate({"a": 1.0}, {"a": "mutate_flaot"}, random.Random(0), 1.0, 1.1, 1.5)
    with pytest.raises(ValueError, match="no value"):
        mutate({}, {"a": "mutate_float"}, random.Random(0), 1.0, 1.1, 1.5)
    with pytest.raises(ValueError, match="not a number"):
        mutate({"a": "fast"}, {"a": "mutate_float"}, random.Random(0), 1.0, 1.1, 1.5)
    spec, problems = parse_spec("k", {"op": "mutate_float", "min": 2, "max": 1, "integer": "yes", "bogus": 1})
    assert spec is None and len(problems) == 3
    assert parse_spec("k", 5)[0] is None


def test_register_operator():
    name = "mutate_test_double"
    try:
        register_operator(name, lambda x, rng, lo, hi, log: 2 * x, max=10.0)
        assert mutate({"a": 3.0}, {"a": name}, random.Random(0), 1.0, 1.1, 1.5) == ({"a": 6.0}, ["a"])
        assert mutate({"a": 6.0}, {"a": name}, random.Random(0), 1.0, 1.1, 1.5)[0] == {"a": 10.0}
        with pytest.raises(ValueError, match="already registered"):
            register_operator(name, lambda x, rng, lo, hi, log: x)
    finally:
        OPERATORS.pop(name, None)
