"""Member start-up is explicit (issue 11): ``initial_pbt_check`` returns a StartInfo, the observer takes it, and
an os.execv restart carries the StartInfo itself over (no module state between the two)."""

from __future__ import annotations

import json
import math
import os

from hydra import compose, initialize_config_dir
from meta_factory import make_meta

from poptrain.pbt import observer as obs_mod
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.restart import RESTART_ENV
from poptrain.pbt.workspace import Workspace
from poptrain.train import CFG_DIR


def member_cfg(tmp_path, idx: int):
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        return compose(
            "config",
            overrides=["pbt=pbt_default", "pbt/mutation=lr_only", "pbt.num_policies=2", f"pbt.policy_idx={idx}",
                       f"train_dir={tmp_path}"],
        )  # fmt: skip


def test_a_restart_carries_its_start_info_over(tmp_path, monkeypatch):
    carried = obs_mod.StartInfo(
        kind="restart", iteration=7, restarts=2, exploits=3, parent={"member": 0, "iteration": 6},
        decision_time=1234.5, event="exploit", objective=math.nan, bookkeeping_s=1.5, process_s=60.25,
    )  # fmt: skip
    # what restart_process leaves for the next process (it then calls os.execv)
    monkeypatch.setenv(RESTART_ENV, json.dumps(carried.restart_state()))
    cfg = member_cfg(tmp_path, 1)
    start = obs_mod.initial_pbt_check(cfg)
    assert RESTART_ENV not in os.environ  # read once: a later crash-resume is no restart
    assert (
        start.claim_token
        and start.claim_token == Workspace(tmp_path / "pbt_workspace").current_claim(1)["token"]
    )
    assert math.isnan(start.objective)
    same = {f: getattr(carried, f) for f in carried.restart_state() if f != "objective"}
    assert {f: getattr(start, f) for f in same} == same and start.kind == "restart"

    settings = PbtSettings.from_cfg(cfg.pbt, cfg)
    o = obs_mod.PbtAlgoObserver(cfg, settings, obs_mod.workspace_for(cfg, settings), start)
    assert (o.iteration, o.restarts, o.exploits, o.parent) == (7, 2, 3, {"member": 0, "iteration": 6})
    assert o.bookkeeping_s == 1.5 and o.process_s() >= 60.25


def test_two_members_in_one_process_each_get_their_own_start(tmp_path):
    """The slot runner starts several members in one process: each observer gets its own start-up's result."""
    ws = Workspace(tmp_path / "pbt_workspace")
    ws.ensure_population(2)
    ws.write_checkpoint(make_meta(0, 4, num_policies=2), {"model": {}})  # member 0 resumes, member 1 is new
    first = obs_mod.member_observer(member_cfg(tmp_path, 0))
    second = obs_mod.member_observer(member_cfg(tmp_path, 1))
    assert (first.iteration, second.iteration) == (4, 0)
    assert first.already_finished is None and second.already_finished is None
    assert (ws.current_claim(0)["token"], ws.current_claim(1)["token"]) == (
        first.start.claim_token,
        second.start.claim_token,
    )
    assert [e.member for e in ws.read_lineage() if e.event == "resume"] == [0]
