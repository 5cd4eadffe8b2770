"""Naming, grid order, reproducible shuffles, argv fidelity and layout of RunDescription."""

from __future__ import annotations

import os
import shlex
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poptrain.errors import ConfigError
from poptrain.launcher.run_description import (
    MAX_NAME_LEN,
    Experiment,
    ParamGrid,
    ParamList,
    RunDescription,
    format_value,
    param_shorthand,
)


def test_grid_order_first_parameter_changes_slowest() -> None:
    grid = ParamGrid([("a", [1, 2]), ("b", ["x", "y", "z"])])
    combos = list(grid.generate_params())
    assert combos == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"},
    ]  # fmt: skip
    assert list(grid.generate_params()) == combos  # deterministic


def test_shuffles_are_reproducible_under_a_seed() -> None:
    combos = [{"i": i} for i in range(20)]
    a = list(ParamList(combos, seed=7).generate_params(randomize=True))
    b = list(ParamList(combos, seed=7).generate_params(randomize=True))
    c = list(ParamList(combos, seed=8).generate_params(randomize=True))
    assert a == b
    assert a != c and sorted(a, key=lambda d: d["i"]) == combos
    assert list(ParamList(combos).generate_params(randomize=False)) == combos
    grid = ParamGrid([("i", list(range(20)))], seed=3)
    assert list(grid.generate_params(randomize=True)) == list(grid.generate_params(randomize=True))
    assert list(grid.generate_params(randomize=True)) != combos


def test_shorthands_follow_the_documented_rule() -> None:
    assert param_shorthand("learning_rate") == "l.rat"
    assert param_shorthand("train.params.config.gamma") == "t.p.c.gam"
    assert param_shorthand("lr") == "lr"
    assert param_shorthand("lr_gamma", taken=["l.gam"]) == "l.gamm"
    assert param_shorthand("x", taken=["x"]) == "x2"


def test_experiment_names_index_params_and_length() -> None:
    exp = Experiment(
        "sweep", "python train.py", ParamGrid([("learning_rate", [1e-3]), ("lr_gamma", [0.9, "a b/c"])])
    )
    names = [name for _, name in exp.generate_argv("--experiment", True, "--")]
    assert names == ["00_sweep_l.rat_0.001_l.gam_0.9", "01_sweep_l.rat_0.001_l.gam_a-b-c"]
    plain = [name for _, name in exp.generate_argv("--experiment", False, "--")]
    assert plain == ["00_sweep", "01_sweep"]
    long = Experiment("x", "p", [{f"param_number_{i}": "v" * 40 for i in range(10)}])
    (_, name), = long.generate_argv("--experiment", True, "--")  # fmt: skip
    assert len(name) <= MAX_NAME_LEN and name.startswith("00_x_p.n.0_" + "v" * 16)
    assert "/" not in name and " " not in name


def test_single_experiment_without_params_runs_once() -> None:
    rd = RunDescription("r", [Experiment("solo", ["prog", "--x"])])
    (cmd, name, root_dir, env), = rd.generate_experiments("/td", makedirs=False)  # fmt: skip
    assert name == "00_solo" and root_dir == os.path.join("r", "solo") and env is None
    assert shlex.split(cmd) == ["prog", "--x", "--experiment=00_solo", "--train_dir=/td/r/solo"]


def test_hydra_style_and_seed_interface(tmp_path) -> None:
    rd = RunDescription(
        "pbt",
        [Experiment("cartpole_pbt", [sys.executable, "-m", "poptrain.train", "task=Cartpole", "pbt=pbt_default",
                                     "pbt.num_policies=4"], ParamGrid([("pbt.policy_idx", [0, 1, 2, 3])]))],
        experiment_arg_name="experiment",
        experiment_dir_arg_name="train_dir",
        param_prefix="",
    )  # fmt: skip
    rd.experiment_suffix = "v2"
    out = list(rd.generate_experiments(str(tmp_path)))
    assert len(out) == 4
    train_dirs = set()
    for i, (cmd, name, root_dir, env) in enumerate(out):
        assert env is None
        argv = shlex.split(cmd)
        assert argv[-3] == f"pbt.policy_idx={i}"
        assert argv[-2] == f"experiment={name}" and name == f"{i:02d}_cartpole_pbt_p.p.idx_{i}"
        train_dirs.add(argv[-1])
        assert root_dir == os.path.join("pbt", "cartpole_pbt_v2")
    # every member shares one train_dir, so a relative pbt.workspace resolves to one folder
    assert train_dirs == {f"train_dir={tmp_path}/pbt/cartpole_pbt_v2"}
    assert (tmp_path / "pbt" / "cartpole_pbt_v2").is_dir()


def test_string_commands_are_split_with_shlex_never_on_spaces() -> None:
    exp = Experiment("q", "python -c 'import sys; print(sys.argv)' --name=\"a b\"")
    assert exp.argv == ["python", "-c", "import sys; print(sys.argv)", "--name=a b"]
    assert shlex.split(exp.cmd) == exp.argv


def test_values_become_single_exact_argv_elements() -> None:
    exp = Experiment(
        "v", ["p"], [{"s": "a b", "e": "k=v", "d": "$X", "n": -2, "f": 1e-5, "b": True, "l": [1, "a"]}]
    )
    (argv, _), = exp.generate_argv("--experiment", True, "--")  # fmt: skip
    assert argv[1:8] == ["--s=a b", "--e=k=v", "--d=$X", "--n=-2", "--f=1e-05", "--b=True", "--l=[1,a]"]
    assert format_value(None) == "null" and format_value(0.0003) == "0.0003"


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])), max_size=5
    )
)
def test_the_cmd_string_round_trips_to_the_argv(values: list[str]) -> None:
    exp = Experiment("h", ["prog"], [{f"p{i}": v for i, v in enumerate(values)}])
    rd = RunDescription("r", [exp])
    planned, = rd.plan("/td", makedirs=False)  # fmt: skip
    cmd, *_ = next(rd.generate_experiments("/td", makedirs=False))
    assert shlex.split(cmd) == planned.argv
    assert planned.argv[1 : 1 + len(values)] == [f"--p{i}={v}" for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ParamGrid([("a", [])]), "non-empty list"),
        (lambda: ParamGrid([("a", "xyz")]), "non-empty list"),
        (lambda: ParamGrid([("a", [1]), ("a", [2])]), "appears twice"),
        (lambda: ParamGrid([("a b", [1])]), "parameter name 'a b'"),
        (lambda: ParamList([{"x=1": 2}]), "parameter name 'x=1'"),
        (lambda: Experiment("bad/name", "p"), "experiment name 'bad/name'"),
        (lambda: Experiment("e", ""), "command is empty"),
        (lambda: Experiment("e", "python 'unclosed"), "cannot be parsed"),
        (lambda: Experiment("e", ["p"], env_vars={"K": 1}), "env_vars"),
        (lambda: RunDescription("r", []), "non-empty list of Experiment"),
        (lambda: RunDescription("r", [Experiment("e", "p"), Experiment("e", "q")]), r"\['e'\] repeat"),
    ],
)
def test_bad_descriptions_fail_with_the_bad_value(make, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_dry_generation_does_not_create_folders(tmp_path) -> None:
    rd = RunDescription("r", [Experiment("e", "p", ParamGrid([("a", [1, 2])]))])
    list(rd.generate_experiments(str(tmp_path / "td"), makedirs=False))
    assert not (tmp_path / "td").exists()
