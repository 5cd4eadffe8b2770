"""Issue 14's observer hooks (poptrain.pbt.search) on a real workspace and composed configs: the initial sample,
the dead-key warning, the window's error bar in the metadata, the noise gate, and PB2 from workspace history."""

from __future__ import annotations

import logging
import random
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from observer_harness import fresh_observer
from omegaconf import OmegaConf

from poptrain.pbt import observer as obs_mod
from poptrain.pbt import search
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.priors import initial_sample
from poptrain.pbt.selection import Decision
from poptrain.pbt.workspace import Workspace
from poptrain.report.population import load_population
from poptrain.report.status import objective_text, status_rows
from poptrain.train import CFG_DIR

C = "train.params.config."


def _compose(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "task=AcrobotHard",
                "pbt=pbt_search",
                "pbt/mutation=acrobot_showcase",
                "pbt.num_policies=4",
                f"train_dir={tmp_path}",
                *overrides,
            ],
        )


def test_initial_sample_is_applied_once_and_dead_keys_warn(tmp_path, caplog):
    search._WARNED.clear()
    cfg = _compose(tmp_path, "pbt.policy_idx=2")
    params = PbtSettings.from_cfg(cfg.pbt, cfg)
    dead = search.dead_set(params, cfg)
    assert dead == {C + "learning_rate"}  # AcrobotHardPPO's adaptive lr schedule overwrites it every epoch
    assert params.initial_width == 0.5  # pbt_search: near the config (tests/pbt/test_search_start.py)
    config = params.initial_params(cfg)
    expected = initial_sample(search.dims(params, dead), 4, 0, config, 0.5)[1]  # member 2 = row 1
    assert C + "learning_rate" not in expected
    with caplog.at_level(logging.WARNING):
        obs_mod.initial_pbt_check(cfg)
    for key, value in expected.items():
        assert OmegaConf.select(cfg, key) == pytest.approx(value)
    assert OmegaConf.select(cfg, C + "learning_rate") == pytest.approx(3e-4)  # dead: not searched
    ws = Workspace(tmp_path / "pbt_workspace")
    (event,) = ws.read_lineage()
    assert event.mode == "initial_sample" and event.member == 2
    dead = [r.getMessage() for r in caplog.records if "cannot act" in r.getMessage()]
    assert len(dead) == 1 and C + "learning_rate" in dead[0] and "lr_schedule=adaptive" in dead[0]
    # member 0 keeps the config's own values
    cfg0 = _compose(tmp_path / "zero", "pbt.policy_idx=0")
    obs_mod.initial_pbt_check(cfg0)
    assert cfg0.train.params.config.entropy_coef == 0.0 and cfg0.train.params.config.gamma == 0.99


def test_metadata_carries_the_error_bar_and_status_shows_it(tmp_path):
    cfg = _compose(tmp_path, "pbt.policy_idx=0", "pbt.objective_window=4")
    o = fresh_observer(cfg)
    o.after_init(SimpleNamespace(num_actors=8, writer=None, frame=0, current_rewards=torch.zeros(8, 1)))
    success = torch.tensor([1.0, 1, 1, 0, 0, 0, 0, 0])
    o.process_infos({"true_objective": success}, torch.arange(8).reshape(-1, 1))
    o.algo = SimpleNamespace(epoch_num=3, experiment_name="m0", experiment_dir=str(tmp_path / "m0"))
    meta = o.metadata(1000, o.objective())
    assert meta.extra["objective_n"] == 8 and meta.extra["objective_window"] == 8
    assert (
        meta.extra["objective_se"] == pytest.approx((3 / 8 * 5 / 8 / 8) ** 0.5)
        and meta.extra["objective_binomial"]
    )
    ws = Workspace(tmp_path / "pbt_workspace")
    ws.write_checkpoint(meta, {"model": {}})
    (row,) = status_rows(load_population(tmp_path / "pbt_workspace"))
    assert objective_text(row) == "0.375 ±0.17 (n 8)"


def test_noise_gate_reads_the_members_errors(meta_factory):
    make_meta = meta_factory
    params = PbtSettings.from_cfg({"noise_z": 2.0})
    pop = {
        0: make_meta(0, objective=0.50, extra={"objective_se": 0.03}),
        1: make_meta(1, objective=0.60, extra={"objective_se": 0.04}),
        2: make_meta(2, objective=0.70, extra={"objective_se": 0.04}),
    }
    assert search.noise_gate(Decision("exploit", 1, "r"), 0, pop, params).action == "mutate"
    assert search.noise_gate(Decision("exploit", 2, "r"), 0, pop, params).action == "exploit"
    for forged in (-1.0, "0.01", float("inf"), True):  # untrusted metadata: an unusable error is unknown
        pop[9] = make_meta(9, objective=0.60, extra={"objective_se": forged})
        assert search.noise_gate(Decision("exploit", 9, "r"), 0, pop, params).action == "exploit"
    off = PbtSettings.from_cfg({"noise_z": 0.0})
    assert search.noise_gate(Decision("exploit", 1, "r"), 0, pop, off).action == "exploit"


def test_pb2_explore_from_workspace_history(tmp_path, meta_factory):
    """Members whose objective rose fastest had a high entropy_coef: PB2's choice follows them."""
    make_meta = meta_factory
    spec = {C + "entropy_coef": {"op": "mutate_float", "min": 0.0, "max": 0.1}}
    params = PbtSettings.from_cfg({"explore": "pb2", "pb2_kappa": 0.5, "num_policies": 3, "mutation": spec})
    ws = Workspace(tmp_path / "ws")
    for member, ent, rate in ((0, 0.03, 0.1), (1, 1e-4, 0.0), (2, 1e-3, 0.02)):
        for it in range(1, 7):
            ws.write_checkpoint(
                make_meta(member, it, objective=rate * it, num_policies=3, params={C + "entropy_coef": ent}),
                {"model": {}},
            )
    new, changed = search.explore_member({C + "entropy_coef": 1e-4}, params, random.Random(0), ws, 1, 6)
    assert changed == [C + "entropy_coef"] and new[C + "entropy_coef"] > 5e-3
