"""Staleness follows each member's own pace (issue 9, point 1), driven with an injected clock: no sleeping.

Four real PbtAlgoObservers share one workspace; a scripted agent stands in for rl_games (the engine's I/O,
ranking, exploit and lineage are the real code). The members write in turn, 1,000 fake seconds apart, so each
member's own interval takes 4,000 s, far beyond ``stale_after_s=600``: with staleness judged on wall clock
alone (``stale_interval_factor=0``) every peer reads as stale, nobody is ever replaced, and the member must say
so (warning, TensorBoard scalar, ``poptrain status`` note); with the pace-relative limit the worst member exploits.
"""

from __future__ import annotations

import logging

from observer_harness import GAP_S, N, exploits, population, run_rounds

from poptrain.pbt.workspace import Workspace
from poptrain.report.population import load_population
from poptrain.report.status import status_json


def test_intervals_longer_than_stale_after_s_still_exploit(tmp_path):
    clock, members = population(tmp_path, factor=3.0)
    run_rounds(clock, members, rounds=3)
    events = exploits(tmp_path)
    assert 3 in {e.member for e in events}, events
    assert members[3].exploits >= 1
    assert float(members[3].algo.weights[0]) in (0.0, 1.0, 2.0)  # a better member's weights, not its own
    meta = Workspace(tmp_path / "pbt_workspace").latest(0)
    assert meta is not None and meta.extra["interval_s"] == N * GAP_S  # each member's own rhythm
    assert all(o.waiting == 0 for o in members)


def test_wall_clock_only_staleness_goes_inert_and_says_so(tmp_path, caplog):
    clock, members = population(tmp_path, factor=0.0)  # the old rule: limit = stale_after_s = 600 s
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.observer"):
        run_rounds(clock, members, rounds=4)
    assert exploits(tmp_path) == []
    assert members[3].waiting == 3  # round 1 only sets the first mark (frame 2,000); rounds 2-4 wait
    lines = [r.getMessage() for r in caplog.records if "no PBT decision possible" in r.getMessage()]
    assert len(lines) == N  # one line per member, at its 3rd waiting iteration (not one per iteration)
    assert "1 of 4 members valid, 0 missing (not started or not yet past start_after), 3 stale" in lines[0]
    tags = [
        (tag, value) for tag, value, _ in members[3].algo.writer.scalars if tag == "pbt/waiting_iterations"
    ]
    assert [v for _, v in tags] == [1.0, 2.0, 3.0]
    # the next write carries the streak into the metadata; status shows it
    run_rounds(clock, members, rounds=1)
    view = load_population(tmp_path / "pbt_workspace", now=clock.t, stale_after_s=600)
    notes = [n for n in status_json(view)["notes"] if "waiting" in n]
    assert len(notes) == N, notes
    assert (
        "member 003 waiting: no PBT decision possible for 3 iterations (1 valid, 0 missing, 3 stale"
        in notes[3]
    )
