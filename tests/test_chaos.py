"""The chaos suite's CI size (benchmarks/chaos.py --small): a population of 3 on Cartpole, launched by the real
launcher with --max_restarts, while members are SIGKILLed (one during a checkpoint write), workspace files are
garbled and every workspace write fails with ENOSPC for a while. Every member must still finish at exactly its
frame budget, no garbled file may be accepted, metadata parents must be backed by lineage, no temp file may stay.
The full run (8 members, >= 30 kills, a launcher crash, a tmpfs filled up) is in benchmarks/RESULTS-chaos.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import chaos  # noqa: E402


@pytest.mark.timeout(900)
def test_small_population_survives_kills_garbled_files_and_a_full_disk(tmp_path):
    cfg = chaos.ChaosConfig(**{**chaos.SMALL, "seed": 1})
    report = chaos.run_chaos(cfg, tmp_path)
    audit = report["audit"]
    assert audit["launcher_exit_code"] == 0, audit
    assert audit["member_kills"] >= cfg.kills and audit["kills_during_writes"] >= 1, report["kills"]
    assert audit["members_lost"] == [] and audit["members_finished_at_exact_budget"] == "3/3", audit
    assert audit["members_reporting_exact_budget"] == "3/3", audit
    assert audit["kills_survived"] == audit["member_kills"]
    assert audit["garbled_files"] == cfg.garbles
    assert audit["garbled_metadata_still_accepted"] == [] and audit["garbled_checkpoints_still_loading"] == []
    assert audit["lineage_consistent"], audit
    assert audit["temp_files_left"] == []
    assert audit["disk_full"]["seconds"] == cfg.disk_full_s
