"""Issue 14's start-of-run mechanisms: the initial sample near the config (``pbt.initial_width``) and no
decision before the objective carries signal (``pbt.wait_for_signal``: ``noise.signal``, ``search.signal_gate``
on a real workspace)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from poptrain.errors import ConfigError
from poptrain.pbt import search
from poptrain.pbt.explore import search_dims
from poptrain.pbt.mutation import parse_specs
from poptrain.pbt.noise import signal
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.priors import initial_sample
from poptrain.pbt.selection import Decision
from poptrain.pbt.workspace import Workspace

C = "train.params.config."
RAW = {
    C + "kl_threshold": {"op": "mutate_float", "min": 2e-3, "max": 5e-2},
    C + "entropy_coef": {"op": "mutate_float", "min": 0.0, "max": 0.1, "zero": 1e-4},
    C + "gamma": {"op": "mutate_discount", "min": 0.9, "max": 0.999},
    C + "mini_epochs": {"op": "mutate_mini_epochs", "min": 1, "max": 8},
}
SPECS = parse_specs(RAW)
CONFIG = {C + "kl_threshold": 0.008, C + "entropy_coef": 0.0, C + "gamma": 0.99, C + "mini_epochs": 8}


def _dims():
    dims, problems = search_dims(SPECS)
    assert problems == []
    return dims


# ---- initial sample near the config -----------------------------------------------------------------------
def test_initial_sample_stays_in_a_box_around_the_config_and_fills_it():
    dims = _dims()
    rows = initial_sample(dims, 9, seed=3, center=CONFIG, width=0.25)
    assert len(rows) == 8
    for d in dims:
        c = d.to_unit(CONFIG[d.key])
        units = [d.to_unit(r[d.key]) for r in rows]
        # the box: width 0.25 of the range, centred on the config, shifted inside [0, 1] at a bound
        lo = min(max(c - 0.125, 0.0), 0.75)
        assert lo - 1e-9 <= c <= lo + 0.25 + 1e-9  # member 0 (the config) lies inside its own box
        if not d.integer:  # still a Latin hypercube: one member per eighth of the box
            assert all(lo - 1e-9 <= u <= lo + 0.25 + 1e-9 for u in units), (d.key, c, units)
            assert sorted(int((u - lo) / 0.25 * 8 - 1e-9) for u in units) == list(range(8)), d.key
    gamma = [r[C + "gamma"] for r in rows]
    assert min(gamma) > 0.98 and max(gamma) < 0.995  # log1m space around 0.99 (unit 0.5 +- 0.125)
    ent = [r[C + "entropy_coef"] for r in rows]
    assert max(ent) <= 1e-4 * 1000**0.25 + 1e-12  # the config's 0 sits at the floor: the box is [0, 0.25]
    mini = {r[C + "mini_epochs"] for r in rows}
    assert mini <= {6, 7, 8} and len(mini) >= 2  # 8 at the top bound: the box shifts down to 6.25 .. 8


def test_initial_width_one_is_the_whole_prior():
    dims = _dims()
    assert initial_sample(dims, 5, seed=7, center=CONFIG, width=1.0) == initial_sample(dims, 5, seed=7)
    wide = initial_sample(dims, 9, seed=7, center=CONFIG, width=1.0)
    d = next(d for d in dims if d.key == C + "gamma")
    assert min(r[d.key] for r in wide) < 0.93 and max(r[d.key] for r in wide) > 0.997


def test_observer_hook_samples_near_the_config(tmp_path):
    params = PbtSettings.from_cfg(
        {"initial": "sample", "num_policies": 4, "policy_idx": 2, "initial_width": 0.2, "mutation": RAW}
    )
    new = search.initial_values(params, CONFIG)
    d = {x.key: x for x in _dims()}
    for key, value in new.items():
        assert abs(d[key].to_unit(value) - d[key].to_unit(CONFIG[key])) <= 0.2 + 1e-9, key
    assert new != CONFIG


def test_params_validate_the_new_fields():
    with pytest.raises(ConfigError) as err:
        PbtSettings.from_cfg({"initial_width": 0, "wait_for_signal": "yes"})
    assert "pbt.initial_width=0: out of range, valid: (0.0, 1.0]" in str(err.value)
    assert "pbt.wait_for_signal='yes': expected true or false" in str(err.value)
    with pytest.raises(ConfigError, match="initial_width=1.5"):
        PbtSettings.from_cfg({"initial_width": 1.5})
    ok = PbtSettings.from_cfg({"initial_width": 0.25, "wait_for_signal": True})
    assert ok.initial_width == 0.25 and ok.wait_for_signal
    default = PbtSettings.from_cfg({})
    assert default.initial_width == 1.0 and not default.wait_for_signal  # pbt_default: unchanged behaviour


# ---- no decision before the objective has signal ----------------------------------------------------------
def test_signal_needs_a_rise_above_the_low_and_members_that_differ():
    # Pendulum's start: windows fall from ~-500 (episodes cut short) to ~-1,150 before they rise: the members
    # differ by far more than their errors, but no member has risen above its own low
    falling = [(-1100.0, 5.0), (-1300.0, 6.0)]
    ok, why = signal(falling, falling, 2.0)
    assert not ok and "risen" in why and "best - worst 200" in why
    # member 0 has risen 150 above its low of -1,250: learning shows
    ok, why = signal([(-1100.0, 5.0), (-1300.0, 6.0)], [(-1250.0, 5.0), (-1300.0, 6.0)], 2.0)
    assert ok and why.startswith("signal") and "150" in why
    # a rise within the noise is no rise: 10 over hypot(5, 5) x 2 = 14.1
    assert not signal([(-1100.0, 5.0), (-1300.0, 6.0)], [(-1110.0, 5.0), (-1300.0, 6.0)], 2.0)[0]
    # AcrobotHard before the swing-up: every success rate 0 +- 0
    assert not signal([(0.0, 0.0)] * 4, [(0.0, 0.0)] * 4, 2.0)[0]
    # risen, but every member within 2 se of the best: nothing worth copying
    ok, why = signal([(0.30, 0.02), (0.26, 0.02)], [(0.0, 0.0), (0.0, 0.0)], 2.0)
    assert not ok and "within noise" in why
    # risen and separated
    assert signal([(0.30, 0.02), (0.0, 0.0)], [(0.0, 0.0), (0.0, 0.0)], 2.0)[0]
    # the margin is z combined errors: a 0.05 rise and lead over hypot(0.02, 0) needs z < 2.5
    assert signal([(0.05, 0.02), (0.0, 0.0)], [(0.0, 0.0), (0.0, 0.0)], 2.0)[0]
    assert not signal([(0.05, 0.02), (0.0, 0.0)], [(0.0, 0.0), (0.0, 0.0)], 3.0)[0]
    assert not signal([(0.5, 0.01)], [(0.0, 0.0)], 2.0)[0]  # one member: nothing to compare


def test_signal_gate_keeps_until_the_workspace_history_shows_signal(tmp_path, meta_factory):
    ws = Workspace(tmp_path / "ws")
    params = PbtSettings.from_cfg({"wait_for_signal": True, "noise_z": 2.0, "num_policies": 3})
    history = {0: [-520.0, -900.0, -1100.0], 1: [-500.0, -950.0, -1250.0], 2: [-530.0, -1000.0, -1200.0]}
    population = {}
    for member, objectives in history.items():
        for it, obj in enumerate(objectives, start=1):
            meta = meta_factory(member, it, objective=obj, num_policies=3, extra={"objective_se": 6.0})
            ws.write_checkpoint(meta, {"model": {}})
        population[member] = meta
    exploit = Decision("exploit", 0, "fraction rule")
    kept = search.signal_gate(exploit, population, ws, params)  # every member at its low: falling
    assert kept.action == "keep" and kept.leader is None and "risen" in kept.reason
    assert search.signal_gate(Decision("mutate", None, "r"), population, ws, params).action == "keep"
    # member 0 rises from its low of -1,100 by more than 2 x hypot(6, 6) = 17: still far below its first -520
    meta = meta_factory(0, 4, objective=-1050.0, num_policies=3, extra={"objective_se": 6.0})
    ws.write_checkpoint(meta, {"model": {}})
    population[0] = meta
    assert search.signal_gate(exploit, population, ws, params) is exploit
    off = PbtSettings.from_cfg({"noise_z": 2.0, "num_policies": 3})
    population[0] = meta_factory(0, 4, objective=-1100.0, num_policies=3, extra={"objective_se": 6.0})
    assert search.signal_gate(exploit, population, ws, off) is exploit  # pbt_default: no gate
    assert search.signal_gate(exploit, population, ws, params).action == "keep"


# ---- explore_steps from the run's budget ------------------------------------------------------------------
def test_explore_steps_zero_follows_the_runs_expected_decisions(tmp_path):
    epoch = 512 * 16
    acrobot = PbtSettings.from_cfg({"interval_steps": 10 * epoch, "initial_delay": 20 * epoch})
    agent = SimpleNamespace(max_frames=-1, max_epochs=150, batch_size=epoch)
    assert search.expected_decisions(acrobot, agent) == 13  # (150 - 20) / 10
    pendulum = PbtSettings.from_cfg({"interval_steps": 5 * epoch, "initial_delay": 10 * epoch})
    assert search.expected_decisions(pendulum, SimpleNamespace(max_epochs=50, batch_size=epoch)) == 8
    assert search.expected_decisions(pendulum, SimpleNamespace(max_frames=30 * epoch, max_epochs=-1)) == 4
    assert (
        search.expected_decisions(pendulum, SimpleNamespace(max_frames=-1, max_epochs=-1)) == 8
    )  # no budget
    assert search.expected_decisions(pendulum, SimpleNamespace(max_frames=5 * epoch)) == 1  # at least one
    # a run with 2 decisions: each perturbation moves at least half of gamma's range (1 / 2 of it)
    params = PbtSettings.from_cfg(
        {
            "explore": "perturb",
            "explore_steps": 0,
            "mutation_rate": 1.0,
            "resample_probability": 0.0,
            "interval_steps": 5 * epoch,
            "initial_delay": 0,
            "mutation": {C + "gamma": RAW[C + "gamma"]},
        }
    )
    short = SimpleNamespace(max_frames=-1, max_epochs=10, batch_size=epoch)
    gamma = next(d for d in _dims() if d.key == C + "gamma")
    for seed in range(20):
        new, changed = search.explore_member(
            {C + "gamma": 0.9}, params, random.Random(seed), Workspace(tmp_path), 0, 1, algo=short
        )
        assert changed == [C + "gamma"] and gamma.to_unit(new[C + "gamma"]) >= 0.5 - 1e-9
    eight = PbtSettings.from_cfg(
        {
            "explore": "perturb",
            "explore_steps": 8,
            "mutation_rate": 1.0,
            "resample_probability": 0.0,
            "mutation": {C + "gamma": RAW[C + "gamma"]},
        }
    )
    moved = []
    for seed in range(20):
        new, _ = search.explore_member({C + "gamma": 0.9}, eight, random.Random(seed), None, 0, 1, algo=short)
        moved.append(gamma.to_unit(new[C + "gamma"]))
    assert max(moved) <= 0.25 + 1e-9  # a fixed explore_steps ignores the budget
