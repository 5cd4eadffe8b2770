"""One ranking (``poptrain.pbt.ranking``): the engine, ``poptrain status``, the report's plots, the replay default
and the export of ``best/`` all name the same best member, with stale members after the fresh ones and a finished
member never stale.

The workspace below is built so that each of the old rules gives a different answer: the highest objective
belongs to a stale member (status and the export used to pick it), and the second highest to a member that
finished long ago (the engine used to count it as stale)."""

from __future__ import annotations

import dataclasses
import math
import time

import torch
from meta_factory import make_meta

from poptrain.cli import _pick_member
from poptrain.pbt import ranking
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.selection import candidates_from_metas, rank
from poptrain.pbt.workspace import Workspace
from poptrain.report.plots import best_of
from poptrain.report.population import load_population
from poptrain.report.status import best_member, status_json, status_rows

STALE_AFTER_S = 600.0


def _workspace(tmp_path):
    """0: fresh, 1.0 | 1: stale (not finished, 2 h old), 5.0 | 2: finished 2 h ago, 3.0 | 3: fresh, NaN."""
    now = time.time()
    ws = Workspace(tmp_path, stale_after_s=STALE_AFTER_S, stale_interval_factor=3.0)
    state = {"model": {"w": torch.zeros(2)}}
    for meta in (
        make_meta(0, 1, objective=1.0, time=now - 10),
        make_meta(1, 1, objective=5.0, time=now - 7200),
        make_meta(2, 1, objective=3.0, time=now - 7200, finished=True),
        make_meta(3, 1, objective=math.nan, time=now - 10),
    ):
        ws.write_checkpoint(meta, state)
    return ws, now


def test_engine_status_report_replay_and_export_name_the_same_best_member(tmp_path):
    ws, now = _workspace(tmp_path)
    population = ws.read_population(now=now, include_stale=True)
    params = dataclasses.replace(PbtSettings(), num_policies=4, stale_after_s=STALE_AFTER_S)

    # the engine: only fresh members lead; the finished one counts, the stale one does not
    engine = [c.member for c in rank(candidates_from_metas(population.values(), now), params)]
    assert engine == [2, 0]
    # best/ (what PbtAlgoObserver.export_best writes)
    best = ws.best(now=now)
    assert best is not None and best.member == 2
    # status, report, replay's default member: the same order, the stale member ranked after the fresh ones
    view = load_population(tmp_path, now=now, stale_after_s=STALE_AFTER_S)
    assert view.ranking() == [2, 0, 1]
    rows = status_rows(view)
    assert [(r.member, r.rank, r.state) for r in rows] == [
        (2, 1, "finished"),
        (0, 2, "running"),
        (1, 3, "stale"),
        (3, None, "running"),
    ]
    assert (
        best_member(rows) == status_json(view, rows)["best"] == best_of(view) == _pick_member(view, None) == 2
    )


def test_a_stale_member_still_ranks_when_it_is_the_only_one_with_an_objective(tmp_path):
    now = time.time()
    old = make_meta(1, 1, objective=5.0, time=now - 7200)
    fresh_nan = make_meta(0, 1, objective=math.nan, time=now)
    stale = lambda m: ranking.is_stale_meta(m, now, STALE_AFTER_S, 3.0)  # noqa: E731
    assert ranking.ranked([fresh_nan, old], stale) == [old]
    assert ranking.best([fresh_nan], stale) is None


def test_ties_go_to_the_lower_member_index_and_pace_sets_staleness():
    now = time.time()
    # written 40 min ago with 20 min intervals: on time (limit max(600, 3 x 1200) = 3600 s), not stale
    slow = make_meta(3, 1, objective=2.0, time=now - 2400, extra={"interval_s": 1200.0})
    tied = [make_meta(2, 1, objective=2.0, time=now), slow, make_meta(1, 1, objective=2.0, time=now)]
    stale = lambda m: ranking.is_stale_meta(m, now, STALE_AFTER_S, 3.0)  # noqa: E731
    assert not stale(slow)
    assert [m.member for m in ranking.ranked(tied, stale)] == [1, 2, 3]
