"""poptrain.pbt.params: PbtSettings.from_cfg validation, change_range, the shipped Hydra configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import poptrain.train as train_mod
from poptrain.errors import ConfigError
from poptrain.pbt.mutation import MutationSpec
from poptrain.pbt.params import PbtSettings

CFG_DIR = str(Path(train_mod.__file__).parent / "cfg")
FULL = {
    "train": {
        "params": {"config": {"learning_rate": 3e-4, "entropy_coef": 0.0, "mini_epochs": 8, "name": "x"}}
    }
}


def _compose(*overrides: str):
    with initialize_config_dir(CFG_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_defaults_are_valid():
    p = PbtSettings.from_cfg({}, FULL)
    assert p == PbtSettings()
    assert p.replace_rule == "fraction" and p.change_min == 1.1 and p.change_max == 1.5


def test_shipped_pbt_default_composes_and_validates():
    cfg = _compose("pbt=pbt_default", "pbt.policy_idx=3")
    p = PbtSettings.from_cfg(cfg.pbt, cfg)
    assert p.enabled and p.policy_idx == 3 and p.num_policies == 8 and p.workspace == "pbt_workspace"
    assert set(p.mutation) >= {
        "train.params.config.learning_rate",
        "train.params.config.entropy_coef",
        "train.params.config.e_clip",
        "train.params.config.critic_coef",
        "train.params.config.grad_norm",
        "train.params.config.gamma",
        "train.params.config.tau",
        "train.params.config.mini_epochs",
    }
    # every default key declares its range (issue 14): gamma's effective horizon 10 .. 1,000 steps
    assert p.mutation["train.params.config.gamma"] == MutationSpec(op="mutate_discount", min=0.9, max=0.999)
    init = p.initial_params(cfg)
    assert init["train.params.config.learning_rate"] == pytest.approx(3e-4)
    assert init["train.params.config.mini_epochs"] == 8


def test_mutation_group_is_selectable():
    cfg = _compose("pbt=pbt_default", "pbt/mutation=lr_only")
    assert list(OmegaConf.to_container(cfg.pbt.mutation)) == ["train.params.config.learning_rate"]
    assert PbtSettings.from_cfg(cfg.pbt, cfg).mutation["train.params.config.learning_rate"].max == 1e-2


def test_no_pbt_is_still_valid():
    cfg = _compose()
    assert PbtSettings.from_cfg(cfg.pbt, cfg).enabled is False


def test_every_problem_is_reported_at_once():
    bad = {
        "num_policies": 4,
        "policy_idx": 4,
        "interval_steps": 0,
        "replace_fraction_worst": 1.5,
        "mutation_rate": "often",
        "replace_rule": "tournament",
        "change_min": 2.0,
        "change_max": 1.5,
        "quantile_fraction": 0.7,
        "keep_checkpoints": 0,
        "intervall_steps": 5,
        "mutation": {
            "train.params.config.learning_rate": "mutate_flaot",
            "train.params.config.no_such_key": "mutate_float",
            "train.params.config.name": "mutate_float",
        },
    }
    with pytest.raises(ConfigError) as info:
        PbtSettings.from_cfg(bad, FULL)
    msg = str(info.value)
    for needle in (
        "pbt.policy_idx=4",
        "0..3",
        "pbt.interval_steps=0",
        "pbt.replace_fraction_worst=1.5",
        "pbt.mutation_rate='often'",
        "pbt.replace_rule='tournament'",
        "fraction, threshold, quantile",
        "[2, 1.5]",
        "pbt.quantile_fraction=0.7",
        "pbt.keep_checkpoints=0",
        "intervall_steps",
        "unknown operator 'mutate_flaot'",
        "mutate_discount, mutate_eps_clip, mutate_float",
        "'train.params.config.no_such_key' matches nothing",
        "'train.params.config.name': value 'x' is not a number",
    ):
        assert needle in msg, (needle, msg)
    assert msg.count("\n  - ") == 12  # one line per problem


def test_change_range_overrides_change_min_max():
    p = PbtSettings.from_cfg({"change_min": 1.1, "change_max": 1.5, "change_range": [1.2, 2.0]})
    assert (p.change_min, p.change_max, p.change_range) == (1.2, 2.0, (1.2, 2.0))
    cfg = OmegaConf.create({"change_range": [1.3, 1.4]})  # a ListConfig
    assert PbtSettings.from_cfg(cfg).change_max == 1.4
    with pytest.raises(ConfigError, match="change_range"):
        PbtSettings.from_cfg({"change_range": [2.0]})
    with pytest.raises(ConfigError, match=r"\[2, 1.2\]"):
        PbtSettings.from_cfg({"change_range": [2.0, 1.2]})


def test_numeric_strings_and_integral_floats_are_accepted():
    p = PbtSettings.from_cfg({"interval_steps": 1e6, "mutation_rate": "0.5"}, {"a": {"b": "1e-4"}})
    assert p.interval_steps == 1_000_000 and p.mutation_rate == 0.5
    p = PbtSettings.from_cfg({"mutation": {"a.b": "mutate_float"}}, {"a": {"b": "1e-4"}})
    assert p.initial_params({"a": {"b": "1e-4"}}) == {"a.b": 1e-4}


def test_workspace_root():
    assert PbtSettings(workspace="ws").workspace_root("runs") == Path("runs/ws")
    assert PbtSettings(workspace="ws", directory="/shared").workspace_root("runs") == Path("/shared/ws")
    assert PbtSettings(workspace="/abs/ws", directory="/shared").workspace_root("runs") == Path("/abs/ws")


def test_one_source_every_field_documented_and_the_hydra_defaults_generated_from_it():
    import dataclasses

    from poptrain.pbt.params import config_defaults
    from poptrain.pbt.selection import RULES

    for cls in (PbtSettings, *(rule.settings for rule in RULES.values())):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc"
    composed = OmegaConf.to_container(_compose("pbt=pbt_default").pbt)
    assert composed.pop("enabled") is True and composed.pop("mutation")  # pbt_default's own two keys
    defaults = config_defaults()
    assert defaults.pop("enabled") is False and defaults.pop("mutation") == {}
    assert composed == defaults  # every other key and value comes from the dataclasses
    assert PbtSettings.from_cfg(_compose("pbt=pbt_default", "pbt.stale_after_s=5").pbt).stale_after_s == 5.0
    from poptrain.pbt.params import describe

    assert "pbt.quantile_fraction = 0.25  (0.0, 0.5] [QuantileSettings]" in describe()  # the docs' listing


def test_a_new_rule_is_one_function_and_its_settings(monkeypatch):
    """Registering a rule makes it a valid pbt.replace_rule with its own validated pbt.* keys."""
    import random
    from dataclasses import dataclass

    from poptrain.pbt import selection
    from poptrain.pbt.fields import setting

    @dataclass(frozen=True)
    class LastSettings:
        margin: float = setting(1.0, "exploit the best when it leads the last member by more", lo=0.0)

    def last(own, ranked, s, n_slots, rng):
        if own.member == ranked[-1].member and ranked[0].objective - own.objective > s.margin:
            return selection.Decision("exploit", ranked[0].member, f"last; margin {s.margin}")
        return selection.Decision("keep", None, "not last")

    monkeypatch.setitem(selection.RULES, "last", selection.Rule(last, LastSettings))
    p = PbtSettings.from_cfg({"replace_rule": "last", "margin": 2.5, "num_policies": 3})
    assert p.rule == LastSettings(2.5)
    population = [selection.Candidate(i, o, 1, 100) for i, o in enumerate((9.0, 5.0, 1.0))]
    assert selection.decide(2, population, p, random.Random(0)).leader == 0
    with pytest.raises(ConfigError) as info:
        PbtSettings.from_cfg({"replace_rule": "lats", "margin": -1})
    assert "expected one of fraction, threshold, quantile, last" in str(info.value)
    assert "pbt.margin=-1: out of range, valid: [0.0, inf]" in str(info.value)
