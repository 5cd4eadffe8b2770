"""Issue 14's search modules: explore (reach, resample), priors (sample, dead keys), noise gate, PB2's GP."""

from __future__ import annotations

import logging
import math
import random

import numpy as np
import pytest

from poptrain.errors import ConfigError
from poptrain.pbt import pb2
from poptrain.pbt.explore import explore, perturb_value, sample_value, search_dims
from poptrain.pbt.mutation import mutate, parse_specs
from poptrain.pbt.noise import gate, window_stats
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.priors import dead_keys, initial_sample, warn_dead_keys
from poptrain.pbt.selection import Decision

C = "train.params.config."
SPECS = parse_specs(
    {
        C + "learning_rate": {"op": "mutate_float", "min": 1e-5, "max": 1e-2},
        C + "entropy_coef": {"op": "mutate_float", "min": 0.0, "max": 0.1, "zero": 1e-4},
        C + "gamma": {"op": "mutate_discount", "min": 0.9, "max": 0.999},
        C + "mini_epochs": {"op": "mutate_mini_epochs", "min": 1, "max": 8},
        C + "e_clip": "mutate_eps_clip",
    }
)


def dims_by_key():
    dims, problems = search_dims(SPECS)
    assert problems == []
    return {d.key: d for d in dims}


def test_spaces_follow_the_key_kind():
    d = dims_by_key()
    assert d[C + "learning_rate"].space == "log"
    assert d[C + "entropy_coef"].space == "log"  # range from 0, zero given: log from the floor 1e-4
    assert d[C + "gamma"].space == "log1m"
    assert d[C + "mini_epochs"].space == "linear" and d[C + "mini_epochs"].integer
    assert (d[C + "e_clip"].lo, d[C + "e_clip"].hi) == (0.01, 0.3)  # the operator's built-in bounds
    # log1m: equal steps in the effective horizon 1/(1-gamma): 0.9 -> 0.99 is the middle of [0.9, 0.999]
    assert d[C + "gamma"].to_unit(0.99) == pytest.approx(0.5)
    assert d[C + "gamma"].from_unit(0.5) == pytest.approx(0.99)


class _AlwaysUpSmallest(random.Random):
    """Direction always up (random() = 0), step always the smallest (uniform returns its low end)."""

    def random(self) -> float:
        return 0.0

    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize("key", [C + "learning_rate", C + "entropy_coef", C + "gamma", C + "e_clip"])
def test_perturbation_crosses_the_range_in_explore_steps(key):
    """The documented reach: explore_steps same-direction steps of the smallest size go from lo to hi."""
    dim = dims_by_key()[key]
    steps = 8
    value = dim.from_unit(0.0)
    rng = _AlwaysUpSmallest()
    for i in range(steps):
        value = perturb_value(value, dim, rng, steps)
        if i < steps - 2:
            assert dim.to_unit(value) < 1.0 - 1e-9
    assert dim.to_unit(value) == pytest.approx(1.0)
    assert value == pytest.approx(dim.hi)


def test_gamma_moves_far_within_a_run_where_the_legacy_operator_cannot():
    """The issue's measurement: mutate_discount kept gamma in [0.984, 0.994] over ~13 decisions from 0.99.
    Perturbation in log(1 - x) reaches 0.95 in a good share of runs of the same length."""
    dim = dims_by_key()[C + "gamma"]
    reached_new = reached_old = 0
    for seed in range(200):
        rng = random.Random(seed)
        value = old = 0.99
        low_new = low_old = 0.99
        for _ in range(13):
            value = perturb_value(value, dim, rng, 8)
            old = mutate({"g": old}, {"g": "mutate_discount"}, rng, 1.0, 1.1, 1.5)[0]["g"]
            low_new, low_old = min(low_new, value), min(low_old, old)
        reached_new += low_new <= 0.95
        reached_old += low_old <= 0.95
    assert reached_old == 0
    assert reached_new >= 40  # measured 30 %+ of 200 runs


def test_perturb_reflects_at_the_bound_and_integers_move():
    d = dims_by_key()
    rng = random.Random(3)
    hi = d[C + "learning_rate"].hi
    for _ in range(50):
        assert perturb_value(hi, d[C + "learning_rate"], rng, 8) < hi
    for _ in range(50):
        v = perturb_value(4, d[C + "mini_epochs"], rng, 100)  # a step far below 1: still moves by 1
        assert isinstance(v, int) and abs(v - 4) == 1


def test_resample_uses_the_prior_and_explore_is_pure():
    specs = parse_specs(
        {C + "entropy_coef": {"op": "mutate_float", "min": 0.0, "max": 0.1, "init": [1e-3, 1e-2]}}
    )
    (dim,), _ = search_dims(specs)
    draws = [sample_value(dim, random.Random(i)) for i in range(300)]
    assert all(1e-3 <= x <= 1e-2 for x in draws)
    assert np.median(np.log10(draws)) == pytest.approx(-2.5, abs=0.15)  # uniform in log space
    params = {C + "entropy_coef": 0.0}
    a = explore(
        params, [dim], random.Random(7), mode="resample", mutation_rate=1.0, resample_probability=0.0, steps=8
    )
    b = explore(
        params, [dim], random.Random(7), mode="resample", mutation_rate=1.0, resample_probability=0.0, steps=8
    )
    assert a == b and a[1] == [C + "entropy_coef"] and a[2][0].startswith("resample")


def test_params_require_ranges_for_the_new_strategies():
    cfg = {"explore": "perturb", "mutation": {C + "critic_coef": "mutate_float"}}
    with pytest.raises(ConfigError, match="critic_coef.*needs a declared range"):
        PbtSettings.from_cfg(cfg)
    with pytest.raises(ConfigError, match="pbt.explore='wild'"):
        PbtSettings.from_cfg({"explore": "wild"})
    ok = PbtSettings.from_cfg(
        {
            "explore": "pb2",
            "initial": "sample",
            "noise_z": 2,
            "mutation": {C + "critic_coef": {"op": "mutate_float", "min": 0.5, "max": 4}},
        }
    )
    assert ok.explore == "pb2" and ok.noise_z == 2.0


# ---- priors -----------------------------------------------------------------------------------------------
def test_initial_sample_fills_every_slice_of_every_prior():
    dims = list(dims_by_key().values())
    rows = initial_sample(dims, 9, seed=0)
    assert len(rows) == 8
    assert rows == initial_sample(dims, 9, seed=0)  # every member computes the same sample
    for d in dims:
        if d.integer:
            continue
        slices = sorted(int(d.to_unit(r[d.key]) * 8) for r in rows)
        assert slices == list(range(8)), d.key  # Latin hypercube: one member per eighth of each prior
    specs = parse_specs(
        {C + "entropy_coef": {"op": "mutate_float", "min": 0.0, "max": 0.1, "init": [1e-3, 0.05]}}
    )
    (ent,), _ = search_dims(specs)
    assert all(1e-3 <= r[C + "entropy_coef"] <= 0.05 for r in initial_sample([ent], 16, seed=1))


def test_dead_keys_name_the_schedule(caplog):
    keys = [C + "learning_rate", C + "entropy_coef", C + "gamma"]
    assert dead_keys(keys, {"lr_schedule": "fixed"}) == []
    adaptive = dead_keys(keys, {"lr_schedule": "adaptive"})
    assert [k for k, _ in adaptive] == [C + "learning_rate"] and "adaptive" in adaptive[0][1]
    both = dead_keys(keys, {"lr_schedule": "linear", "schedule_entropy": True})
    assert [k for k, _ in both] == [C + "learning_rate", C + "entropy_coef"]
    assert "schedule_entropy" in both[1][1]
    with caplog.at_level(logging.WARNING):
        warn_dead_keys(keys, {"lr_schedule": "adaptive"})
    lines = [r.getMessage() for r in caplog.records if "cannot act" in r.getMessage()]
    assert len(lines) == 1 and "learning_rate" in lines[0] and "lr_schedule=adaptive" in lines[0]


# ---- noise-aware selection --------------------------------------------------------------------------------
def test_window_stats_binomial_and_gaussian():
    s = window_stats([1.0] * 30 + [0.0] * 70)
    assert s.binomial and s.mean == pytest.approx(0.3) and s.se == pytest.approx(math.sqrt(0.3 * 0.7 / 100))
    g = window_stats([1.0, 3.0, 5.0, 7.0])
    assert not g.binomial and g.se == pytest.approx(np.std([1, 3, 5, 7], ddof=1) / 2)
    assert math.isnan(window_stats([2.5]).se) and window_stats([]).n == 0


def test_gate_copies_only_beyond_the_noise():
    exploit = Decision("exploit", 3, "fraction rule")
    # lead 0.10, combined se hypot(0.03, 0.04) = 0.05: z=2 needs > 0.10 -> within noise
    d = gate(exploit, 0.50, 0.03, 0.60, 0.04, 2.0)
    assert d.action == "mutate" and d.leader is None and "within noise" in d.reason and "0.05" in d.reason
    assert gate(exploit, 0.50, 0.03, 0.61, 0.04, 2.0).action == "exploit"
    assert gate(exploit, 0.50, 0.03, 0.60, 0.04, 0.0) is exploit  # off
    assert gate(exploit, 0.50, math.nan, 0.60, 0.04, 2.0) is exploit  # unknown error: the rule's decision
    keep = Decision("keep", None, "x")
    assert gate(keep, 0.0, 0.1, 1.0, 0.1, 2.0) is keep


# ---- PB2 --------------------------------------------------------------------------------------------------
def test_gp_fits_a_known_function():
    gen = np.random.default_rng(0)
    x = gen.uniform(size=(40, 1))
    y = np.sin(6 * x[:, 0]) + gen.normal(0, 0.05, 40)
    gp = pb2.fit_gp(x, np.zeros(40), y)
    xq = np.linspace(0.05, 0.95, 50)[:, None]
    mean, std = gp.predict(xq, np.zeros(50))
    assert np.max(np.abs(mean - np.sin(6 * xq[:, 0]))) < 0.15
    assert np.all(std < 0.2)
    far_mean, far_std = gp.predict(np.array([[0.5]]), np.array([0.0]))
    assert far_std[0] < 0.2


def test_time_varying_kernel_forgets_old_data():
    """The same x measured early with one value and late with another: the late value wins at later t."""
    x = np.full((20, 1), 0.5)
    t = np.array([0.0] * 10 + [10.0] * 10)
    y = np.array([1.0] * 10 + [-1.0] * 10) + np.random.default_rng(1).normal(0, 0.01, 20)
    gp = pb2.fit_gp(x, t, y)
    assert gp.eps > 0
    mean, _ = gp.predict(np.array([[0.5]]), np.array([11.0]))
    assert mean[0] < -0.5


def test_ucb_finds_a_toy_bandits_optimum():
    """Sequential UCB on f(x) = -(x0-0.7)^2 - (x1-0.2)^2 with noise: after 25 rounds the best pull is close."""
    gen = np.random.default_rng(2)
    xs, ys = [], []
    for _ in range(25):
        x = pb2.ucb_point(
            np.array(xs).reshape(-1, 2), np.zeros(len(xs)), np.array(ys), 0.0, np.empty((0, 2)), gen
        )
        xs.append(x)
        ys.append(-((x[0] - 0.7) ** 2) - (x[1] - 0.2) ** 2 + gen.normal(0, 0.01))
    best = xs[int(np.argmax(ys))]
    assert abs(best[0] - 0.7) < 0.1 and abs(best[1] - 0.2) < 0.1


def test_pending_points_spread_the_batch():
    gen = np.random.default_rng(3)
    x = gen.uniform(size=(12, 1))
    y = -np.abs(x[:, 0] - 0.5)
    alone = pb2.ucb_point(x, np.zeros(12), y, 0.0, np.empty((0, 1)), np.random.default_rng(4), kappa=3.0)
    crowded = pb2.ucb_point(
        x, np.zeros(12), y, 0.0, np.repeat(alone[None], 3, 0), np.random.default_rng(4), kappa=3.0
    )
    assert abs(crowded[0] - alone[0]) > 0.01


class _Meta:
    def __init__(self, iteration, objective, params, exploits=0):
        self.iteration, self.objective, self.params, self.exploits = iteration, objective, params, exploits


def test_pb2_suggest_uses_improvements_per_interval():
    (lr_dim,) = [d for d in search_dims(SPECS)[0] if d.key == C + "learning_rate"]
    # member improves fast at lr 1e-3 and slowly at 1e-5; one exploit interval (weights copied) is skipped
    hist = {}
    for m, lr, rate in ((0, 1e-3, 1.0), (1, 1e-5, 0.1), (2, 1e-4, 0.5)):
        hist[m] = [_Meta(i, rate * i, {C + "learning_rate": lr}) for i in range(6)]
    hist[1].append(_Meta(6, 100.0, {C + "learning_rate": 1e-5}, exploits=1))
    x, t, y = pb2.history_points(hist, [lr_dim])
    assert len(y) == 15 and y.max() == pytest.approx(1.0)
    choice = pb2.suggest(hist, [lr_dim], [], 7.0, random.Random(0), kappa=0.5)
    assert choice[C + "learning_rate"] > 2e-4
