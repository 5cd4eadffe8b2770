"""Isaac Lab's PbtCfg pasted verbatim, the IGE / Isaac Lab presets, and IGE's engine semantics as options
(issue 9, points 5 and 6)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from observer_harness import INTERVAL, exploits, population, run_rounds

from poptrain.errors import ConfigError
from poptrain.pbt import observer as obs_mod
from poptrain.pbt.params import PbtSettings, rule_choice
from poptrain.pbt.workspace import Workspace
from poptrain.train import CFG_DIR

# A `pbt:` block as Isaac Lab users write it (the fields of isaaclab_rl's PbtCfg, agent.* mutation keys).
IL_BLOCK = """
enabled: True
policy_idx: 0
num_policies: 2
directory: ''
workspace: pbt_workspace
objective: ''
interval_steps: 2048
threshold_std: 0.1
threshold_abs: 0.025
mutation_rate: 0.25
change_range: [1.1, 2.0]
mutation:
  agent.params.config.learning_rate: mutate_float
  agent.params.config.entropy_coef: mutate_float
  agent.params.config.gamma: mutate_discount
"""


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_an_isaac_lab_block_works_verbatim_and_selects_its_rule() -> None:
    block = yaml.safe_load(IL_BLOCK)
    params = PbtSettings.from_cfg(block, composed())
    assert list(params.mutation) == [
        "train.params.config.learning_rate", "train.params.config.entropy_coef", "train.params.config.gamma",
    ]  # fmt: skip
    assert params.replace_rule == "threshold" and (params.rule.threshold_std, params.rule.threshold_abs) == (
        0.1,
        0.025,
    )
    assert (params.change_min, params.change_max, params.mutation_rate) == (1.1, 2.0, 0.25)
    assert "Isaac Lab-style" in rule_choice(block)[1]
    # the rule follows the block: an explicit replace_rule wins, an IGE-style block keeps IGE's rule
    assert PbtSettings.from_cfg({**block, "replace_rule": "fraction"}).replace_rule == "fraction"
    ige = {k: v for k, v in block.items() if not k.startswith("threshold")} | {"replace_fraction_worst": 0.25}
    assert PbtSettings.from_cfg(ige).replace_rule == "fraction"
    assert rule_choice({"threshold_std": 0.2, "replace_fraction_best": 0.3})[0] == "fraction"
    with pytest.raises(ConfigError, match="repeats 'train.params.config.gamma'"):
        PbtSettings.from_cfg({"mutation": {"agent.params.config.gamma": "mutate_discount",
                                         "train.params.config.gamma": "mutate_discount"}})  # fmt: skip


def test_presets_carry_the_references_defaults() -> None:
    il = PbtSettings.from_cfg(composed("pbt=isaaclab").pbt)
    assert (il.replace_rule, il.interval_steps, il.mutation_rate, il.change_range) == (
        "threshold", 100_000, 0.25, (1.1, 2.0))  # fmt: skip
    assert (il.initial_mutation, il.start_after, il.initial_delay) == ("none", 0, 0)
    ige = PbtSettings.from_cfg(composed("pbt=isaacgymenvs").pbt)
    assert (ige.replace_rule, ige.mutation_rate, ige.change_min, ige.change_max) == (
        "fraction",
        0.15,
        1.1,
        1.5,
    )
    assert (ige.interval_steps, ige.start_after, ige.initial_delay) == (10_000_000, 10_000_000, 20_000_000)
    assert (ige.exploit_params, ige.initial_mutation, ige.start_after_mode) == (
        "mixed",
        "all",
        "since_change",
    )
    ours = PbtSettings.from_cfg(composed("pbt=pbt_default").pbt)  # defaults unchanged
    assert (ours.exploit_params, ours.initial_mutation, ours.start_after_mode) == (
        "leader",
        "except_first",
        "absolute",
    )
    with pytest.raises(ConfigError, match=r"pbt.exploit_params='both': expected one of leader, mixed"):
        PbtSettings.from_cfg({"exploit_params": "both"})


@pytest.mark.parametrize("mode, mutated", [("except_first", {1}), ("all", {0, 1}), ("none", set())])
def test_initial_mutation_modes(tmp_path, mode, mutated) -> None:
    for member in (0, 1):
        cfg = composed("pbt=pbt_default", "pbt.num_policies=2", f"pbt.policy_idx={member}",
                       f"train_dir={tmp_path}", f"pbt.initial_mutation={mode}", "pbt.mutation_rate=1")  # fmt: skip
        obs_mod.initial_pbt_check(cfg)
    events = Workspace(tmp_path / "pbt_workspace").read_lineage()
    assert {e.member for e in events if e.event == "mutate"} == mutated


def test_exploit_params_mixed_starts_from_own_or_leader_params(tmp_path) -> None:
    bases = []
    for seed in range(8):
        clock, members = population(tmp_path / f"s{seed}", extra=(
            "pbt.exploit_params=mixed", "pbt.mutation_rate=0", f"seed={seed}"))  # fmt: skip
        for i, o in enumerate(members):  # tell the members apart by their learning rate
            o.params = {"train.params.config.learning_rate": 1e-3 * (i + 1)}
        run_rounds(clock, members, rounds=3, hold=True)
        for e in exploits(tmp_path / f"s{seed}"):
            if e.member == 3:
                own = e.old_params["train.params.config.learning_rate"]
                new = e.new_params["train.params.config.learning_rate"]
                leader = 1e-3 * (e.source + 1)  # members 0-2 never change (never below the mean)
                if own != leader:
                    bases.append("own" if new == own else "leader" if new == leader else "other")
    assert set(bases) == {"own", "leader"}, bases  # IGE: probability 1/2 each (mutation_rate 0: no change)


@pytest.mark.parametrize("mode", ["absolute", "since_change"])
def test_start_after_since_change_gives_a_replaced_member_settling_time(tmp_path, mode) -> None:
    clock, members = population(
        tmp_path, extra=(f"pbt.start_after_mode={mode}", f"pbt.start_after={3 * INTERVAL}")
    )
    run_rounds(
        clock, members, rounds=12, hold=True
    )  # member 3 stays the worst: it wants to exploit every time
    frames = [e.frames for e in exploits(tmp_path) if e.member == 3]
    gaps = {b - a for a, b in zip(frames, frames[1:], strict=False)}
    if mode == "absolute":  # our default: no settling after an exploit
        assert INTERVAL in gaps, frames
    else:  # IGE: at least start_after frames between two replacements of the same member
        assert frames and min(gaps) >= 3 * INTERVAL, frames


def test_a_pasted_isaac_lab_file_trains(tmp_path) -> None:
    """A real member whose pbt config is the Isaac Lab block in its own file (hydra.searchpath)."""
    (tmp_path / "cfg" / "pbt").mkdir(parents=True)
    (tmp_path / "cfg" / "pbt" / "il_pasted.yaml").write_text(IL_BLOCK)
    proc = subprocess.run(
        [sys.executable, "-m", "poptrain.train", f"hydra.searchpath=[file://{tmp_path / 'cfg'}]", "pbt=il_pasted",
         "task=Cartpole", "num_envs=64", "max_iterations=40", f"train_dir={tmp_path / 'runs'}",
         "pbt.num_policies=1", "train.params.config.save_frequency=0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replace_rule=threshold (Isaac Lab-style block" in proc.stdout + proc.stderr
    meta = Workspace(tmp_path / "runs" / "pbt_workspace").latest(0)
    assert meta is not None and set(meta.params) == {
        "train.params.config.learning_rate",
        "train.params.config.entropy_coef",
        "train.params.config.gamma",
    }


def test_an_ige_pbt_block_loads_unchanged() -> None:
    """The fields of IGE's cfg/pbt/pbt_default.yaml, dbg_mode included."""
    block = yaml.safe_load(
        "enabled: True\npolicy_idx: 0\nnum_policies: 8\nworkspace: pbt_workspace\ndbg_mode: False\n"
        "interval_steps: 10000000\nstart_after: 10000000\ninitial_delay: 20000000\nreplace_fraction_worst: 0.125\n"
        "replace_fraction_best: 0.3\nreplace_threshold_frac_std: 0.5\nreplace_threshold_frac_absolute: 0.05\n"
        "mutation_rate: 0.15\nchange_min: 1.1\nchange_max: 1.5\n"
        "mutation:\n  train.params.config.learning_rate: mutate_float\n  train.params.config.gamma: mutate_discount\n"
    )
    params = PbtSettings.from_cfg(block, composed())
    assert params.replace_rule == "fraction" and params.mutation_rate == 0.15
    with pytest.raises(
        ConfigError, match=r"pbt.dbg_mode=True: IGE's single-policy debug mode is not supported"
    ):
        PbtSettings.from_cfg({**block, "dbg_mode": True})
