"""Restart argv: values survive a round trip through Hydra's own override parser."""

import math
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from poptrain.overrides import hydra_value, override_key
from poptrain.pbt.restart import merge_overrides, restart_argv

PARSER = OverridesParser.create()


def parse_value(override: str):
    (parsed,) = PARSER.parse_overrides([override])
    return parsed.value()


@pytest.mark.parametrize(
    "value",
    [
        0.0003, 1e-05, -2.5, 3, -7, 0, True, False, None, "plain", "with space", "a=b", "it's", 'say "hi"',
        "$HOME", "back\\slash", "end\\", "a\\'b", "q\\\\", "1e-3", "true", "null", "", "runs/exp/nn/x.pth", [1, 2, 3], ["a b", "c"],
    ],
)
def test_hydra_value_round_trips(value):
    got = parse_value(f"key={hydra_value(value)}")
    if isinstance(value, float):
        assert isinstance(got, float) and math.isclose(got, value, rel_tol=0, abs_tol=0)
    else:
        assert got == value


def test_nan_and_inf_round_trip():
    assert math.isnan(parse_value(f"k={hydra_value(float('nan'))}"))
    assert parse_value(f"k={hydra_value(float('inf'))}") == math.inf
    assert parse_value(f"k={hydra_value(float('-inf'))}") == -math.inf


def test_override_key_strips_prefixes():
    assert override_key("+a.b=1") == "a.b"
    assert override_key("++a.b=1") == "a.b"
    assert override_key("~a.b") == "a.b"
    assert override_key("a.b='x=y'") == "a.b"


def test_merge_replaces_only_the_keys_set():
    overrides = ["task=Cartpole", "train.params.config.learning_rate=0.001", "experiment=m 1", "checkpoint=old.pth"]
    merged = merge_overrides(overrides, {"train.params.config.learning_rate": 5e-4, "checkpoint": "new dir/x.pth"})
    assert merged[:2] == ["task=Cartpole", "experiment=m 1"]
    values = {PARSER.parse_overrides([o])[0].key_or_group: PARSER.parse_overrides([o])[0].value() for o in merged}
    assert values["train.params.config.learning_rate"] == 5e-4
    assert values["checkpoint"] == "new dir/x.pth"
    assert sum(o.startswith("checkpoint=") for o in merged) == 1


def test_restart_argv_is_a_python_module_call():
    argv = restart_argv(["task=Cartpole"], {"seed": 3})
    assert argv[:3] == [sys.executable, "-m", "poptrain.train"]
    assert argv[3:] == ["task=Cartpole", "seed=3"]
