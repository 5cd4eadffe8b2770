"""Restart argv: values survive a round trip through Hydra's own override parser."""

import math
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from poptrain.overrides import hydra_value, merge_overrides, override_key
from poptrain.pbt.restart import restart_argv

PARSER = OverridesParser.create()


def parse_value(override: str):
    (parsed,) = PARSER.parse_overrides([override])
    return parsed.value()


@pytest.mark.parametrize(
    "value",
    [
        0.0003,
        1e-05,
        -2.5,
        3,
        -7,
        0,
        True,
        False,
        None,
        "plain",
        "with space",
        "a=b",
        "it's",
        'say "hi"',
        "$HOME",
        "back\\slash",
        "end\\",
        "a\\'b",
        "q\\\\",
        "1e-3",
        "true",
        "null",
        "",
        "runs/exp/nn/x.pth",
        [1, 2, 3],
        ["a b", "c"],
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
    overrides = [
        "task=Cartpole",
        "train.params.config.learning_rate=0.001",
        "experiment=m 1",
        "checkpoint=old.pth",
    ]
    merged = restart_argv(
        overrides, {"train.params.config.learning_rate": 5e-4, "checkpoint": "new dir/x.pth"}
    )[3:]
    assert merged[:2] == ["task=Cartpole", "experiment=m 1"]
    values = {
        PARSER.parse_overrides([o])[0].key_or_group: PARSER.parse_overrides([o])[0].value() for o in merged
    }
    assert values["train.params.config.learning_rate"] == 5e-4
    assert values["checkpoint"] == "new dir/x.pth"
    assert sum(o.startswith("checkpoint=") for o in merged) == 1


def test_restart_argv_is_a_python_module_call():
    argv = restart_argv(["task=Cartpole"], {"seed": 3})
    assert argv[:3] == [sys.executable, "-m", "poptrain.train"]
    assert argv[3:] == ["task=Cartpole", "seed=3"]


def test_one_merge_for_strings_and_values_keeps_the_prefix_of_a_replaced_override():
    base = ["task=Cartpole", "+task.env.extra=1", "++seed=3", "~train.x", "num_envs=8"]
    # the user's (or replay's) extra overrides: no prefix inherits the base's, an own prefix is kept
    merged = merge_overrides(base, ["task.env.extra=2", "train.x=1", "+num_envs=4", "max_iterations=3"])
    assert merged == [
        "task=Cartpole",
        "++seed=3",
        "+task.env.extra=2",
        "++train.x=1",
        "+num_envs=4",
        "max_iterations=3",
    ]
    # restart renders its values and merges them with the same function
    assert restart_argv(base, {"task.env.extra": 2, "train.x": 1})[3:] == [
        "task=Cartpole",
        "++seed=3",
        "num_envs=8",
        "+task.env.extra=2",
        "++train.x=1",
    ]
