"""Comparing members at the same progress (``pbt.compare: synch``) and judging a copy by its source until it has
episodes of its own: real observers on a real workspace (tests/pbt/observer_harness.py: a scripted agent, an
injected clock), members that wait run in threads."""

from __future__ import annotations

import threading

import torch
from meta_factory import make_meta
from observer_harness import exploits, population

from poptrain.pbt import search
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.selection import Decision, records_at
from poptrain.pbt.workspace import Workspace

INTERVAL = 1000


def _prime(members) -> None:
    """The first epoch of each member: its first PBT iteration is then at ``INTERVAL`` frames."""
    for o in members:
        o.after_print_stats(0, 0, 0.0)


def _step(o, objective: float) -> None:
    """One interval of member ``o`` whose window reads ``objective``."""
    o.window.clear()
    o.carried_source = None
    o.carried_objective = objective
    o.algo.frame += INTERVAL
    o.algo.epoch_num += 1
    o.after_print_stats(o.algo.frame, o.algo.epoch_num, 0.0)


def _in_thread(o, objective: float, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            _step(o, objective)
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_records_at_takes_each_members_objective_at_the_frame_and_keeps_the_newest_record(tmp_path):
    ws = Workspace(tmp_path / "ws")
    for it, objective in ((1, 1.0), (2, 2.0), (3, 50.0)):  # member 0 runs ahead, learning fast
        ws.write_checkpoint(
            make_meta(0, it, frames=it * INTERVAL, objective=objective, extra={"objective_se": it}),
            {"model": {}},
        )
    ws.write_checkpoint(make_meta(1, 1, frames=INTERVAL, objective=7.0), {"model": {}})
    newest = {0: ws.latest(0), 1: ws.latest(1)}
    assert (
        ws.record_at(0, 2 * INTERVAL).objective == 2.0 and ws.record_at(0, 2 * INTERVAL + 999).iteration == 2
    )
    assert ws.record_at(1, INTERVAL - 1) is None
    judged = records_at(newest, ws.record_at, INTERVAL)
    assert judged[0].objective == 1.0 and judged[0].extra["objective_se"] == 1  # its window at that point
    assert judged[0].iteration == 3 and judged[0].checkpoint == newest[0].checkpoint  # copies take the newest
    assert judged[1] is newest[1]  # not past the frame: unchanged
    # member 2 copied member 0 and has no finished episode of its own: its record at 2000, written before the
    # wait, carried member 0's objective of an interval ago (1.0); judged at 2000 it is member 0's there (2.0)
    carried = {"objective_source": 0, "objective_n": 0}
    ws.write_checkpoint(make_meta(2, 1, frames=2 * INTERVAL, objective=1.0, extra=carried), {"model": {}})
    newest[2] = ws.latest(2)
    judged = records_at(newest, ws.record_at, 2 * INTERVAL)
    assert judged[2].objective == 2.0 and judged[2].extra["objective_se"] == 2
    for forged in ("0", True, 2, 99, None):  # not a member index, itself, unknown: its own record stands
        ws.write_checkpoint(
            make_meta(2, 2, frames=2 * INTERVAL, objective=1.0, extra={"objective_source": forged}),
            {"model": {}},
        )
        newest[2] = ws.latest(2)
        assert records_at(newest, ws.record_at, 2 * INTERVAL)[2].objective == 1.0, forged


def test_a_member_ahead_waits_for_its_peers_and_is_judged_at_the_same_frame(tmp_path):
    """Member 0 is one interval ahead and its newest window (10) beats its peers' older ones (5, 6); at the
    same frame the peers read 20 and 30. ``latest`` keeps it; ``synch`` waits, sees it is the worst, copies."""
    for mode, expected in (("latest", []), ("synch", [2])):
        root = tmp_path / mode
        clock, members = population(root, extra=(f"pbt.compare={mode}",))
        _prime(members)
        m0, m1, m2, _ = members  # member 3 never starts: nobody waits for it
        _step(m1, 5.0)
        _step(m2, 6.0)
        _step(m0, 5.5)  # at 1000: 5.5 is the mean of 5, 5.5, 6: no underperformer
        errors: list[BaseException] = []
        if mode == "latest":
            _step(m0, 10.0)  # at 2000, against 5 and 6 at 1000: the leader
            _step(m1, 20.0)
            _step(m2, 30.0)
        else:
            threads = [
                _in_thread(m0, 10.0, errors),
                _in_thread(m1, 20.0, errors),
                _in_thread(m2, 30.0, errors),
            ]
            for t in threads:
                t.join()
        assert not errors
        copied = [e.source for e in exploits(root) if e.member == 0]
        assert copied == expected, mode
        if mode == "synch":
            (event,) = [e for e in exploits(root) if e.member == 0]
            assert event.source_iteration == 2 and event.frames == 2 * INTERVAL
            assert m0.synch_wait_s >= 0.0
            assert torch.equal(m0.algo.weights, torch.full((3,), 2.0))  # member 2's weights


def test_a_stalled_peer_is_waited_for_only_until_it_is_stale(tmp_path):
    clock, members = population(tmp_path, extra=("pbt.compare=synch", "pbt.stale_after_s=50"))
    _prime(members)
    m0, m1, m2, _ = members
    _step(m1, 5.0)  # member 1 writes at 1000 and then hangs
    clock.t += 40.0
    _step(m2, 6.0)
    _step(m0, 5.5)
    errors: list[BaseException] = []
    t0 = _in_thread(m0, 1.0, errors)  # at 2000: waits for members 1 and 2
    t2 = _in_thread(m2, 30.0, errors)  # at 2000: waits for member 1
    ws = Workspace(tmp_path / "pbt_workspace")
    while (ws.latest(2).frames, ws.latest(0).frames) != (2 * INTERVAL, 2 * INTERVAL):
        t2.join(0.05)
    assert t0.is_alive() and t2.is_alive()  # member 1 is 40 s old: fresh (limit 50 s), so both still wait
    clock.t += 20.0  # member 1's record is now 60 s old: stale; members 0 and 2 wrote 20 s ago
    t0.join()
    t2.join()
    assert not errors
    (event,) = [e for e in exploits(tmp_path) if e.member == 0]
    assert event.source == 2  # judged against member 2 alone, member 1 counted absent


def test_a_copy_is_judged_by_its_source_until_it_has_episodes_of_its_own(tmp_path):
    clock, members = population(tmp_path, extra=("pbt.judge_copy=source",))
    _prime(members)
    for o, objective in zip(members, (10.0, 9.0, 8.0, 1.0), strict=True):
        _step(o, objective)
    m3 = members[3]
    (event,) = [e for e in exploits(tmp_path) if e.member == 3]  # far below the others: copies one of them
    source = members[event.source]
    assert m3.carried_source == event.source and not m3.window
    assert m3.metadata(m3.algo.frame, m3.objective()).extra["objective_source"] == event.source
    assert m3.objective() == Workspace(tmp_path / "pbt_workspace").latest(event.source).objective
    before = m3.objective()
    _step(source, 40.0)  # the source improves (at 2000 frames)
    assert (
        m3.objective() == before
    )  # the source's record at the copy's own progress (1000) is still the old one
    m3.algo.frame += INTERVAL  # the copy trains on, still without a finished episode of its own: it follows
    assert m3.objective() == 40.0
    m3.algo.current_rewards = torch.tensor([[-3.0], [-4.0], [-5.0], [-6.0]])
    m3.process_infos({}, torch.tensor([[0], [1]]))  # episodes that began under member 3's own old weights
    assert not m3.window and m3.objective() == 40.0
    m3.process_infos({}, torch.tensor([[0]]))  # env 0's next episode began after the copy: it counts
    assert m3.objective() == -3.0
    assert "objective_source" not in m3.metadata(m3.algo.frame, m3.objective()).extra  # its own now
    m3.process_infos({}, torch.tensor([[1], [2]]))  # env 1 again (counts), env 2 for the first time (not)
    assert m3.objective() == -3.5 and sorted(m3.window) == [-4.0, -3.0]


def test_signal_gate_ignores_records_after_the_compared_frame(tmp_path):
    ws = Workspace(tmp_path / "ws")
    params = PbtSettings.from_cfg({"wait_for_signal": True, "noise_z": 2.0, "num_policies": 2})
    for member, objectives in {0: [-500.0, -900.0, -1200.0], 1: [-510.0, -950.0]}.items():
        for it, obj in enumerate(objectives, start=1):
            extra = {"objective_se": 5.0}
            meta = make_meta(member, it, frames=it * INTERVAL, objective=obj, num_policies=2, extra=extra)
            ws.write_checkpoint(meta, {"model": {}})
    population = {0: ws.record_at(0, 2 * INTERVAL), 1: ws.latest(1)}
    exploit = Decision("exploit", 0, "rule")
    # member 0's record at 3000 (-1,200) is below its -900 at 2000: with it, -900 reads as a rise from a low
    assert search.signal_gate(exploit, population, ws, params) is exploit
    assert search.signal_gate(exploit, population, ws, params, 2 * INTERVAL).action == "keep"


def test_the_search_preset_compares_at_the_same_frame():
    from hydra import compose, initialize_config_dir

    from poptrain.train import CFG_DIR

    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["pbt=pbt_search"])
        default = compose(config_name="config", overrides=["pbt=pbt_default"])
    assert PbtSettings.from_cfg(cfg.pbt, cfg).compare == "synch"
    assert PbtSettings.from_cfg(default.pbt, default).compare == "latest"


def test_real_members_compare_at_the_same_frame(tmp_path):
    """Two rl_games member processes, member 1 about 4x slower per epoch (8 mini-epochs against 1). Once member 1
    has a record, member 0 never decides at a frame member 1 has not reached: member 0's record one interval
    later is always written after member 1's record at the frame it decided at."""
    from test_pbt_e2e import EPOCH_FRAMES, member_argv, start, wait_all

    ws = tmp_path / "workspace"
    interval = 8 * EPOCH_FRAMES
    argvs = [
        member_argv(ws, tmp_path / "runs", i, 2, epochs=64, mutation="lr_only")
        + ["pbt.compare=synch", f"seed={7 + i}", f"train.params.config.mini_epochs={1 if i == 0 else 8}"]
        for i in range(2)
    ]
    procs = [start(argv, tmp_path / f"log{i}.txt") for i, argv in enumerate(argvs)]
    codes = wait_all(procs, timeout=400)
    logs = [(tmp_path / f"log{i}.txt").read_text() for i in range(2)]
    assert codes == [0, 0], [log[-2000:] for log in logs]
    w = Workspace(ws)
    first = w.member_history(1)[0]
    zero = {m.frames: m for m in w.member_history(0)}
    one = {m.frames: m for m in w.member_history(1)}
    checked = 0
    for frames, meta in zero.items():
        decided = (
            interval <= frames and not meta.finished and frames + interval in zero
        )  # initial_delay: 1 interval
        if decided and meta.time >= first.time and frames in one:
            assert zero[frames + interval].time >= one[frames].time, (frames, zero, one)
            checked += 1
    assert checked >= 2, (sorted(zero), sorted(one), first)
    assert "waiting at frame" in logs[0] and "every member at frame" in logs[0]


def test_by_default_a_copy_carries_the_leaders_objective_and_counts_every_episode(tmp_path):
    """pbt.judge_copy=carried (pbt_default): the behaviour before judge_copy existed."""
    clock, members = population(tmp_path)
    _prime(members)
    for o, objective in zip(members, (10.0, 9.0, 8.0, 1.0), strict=True):
        _step(o, objective)
    m3 = members[3]
    (event,) = [e for e in exploits(tmp_path) if e.member == 3]
    assert m3.carried_source is None and m3.objective() == event.extra["source_objective"]
    assert "objective_source" not in m3.metadata(m3.algo.frame, m3.objective()).extra
    m3.algo.current_rewards = torch.tensor([[-3.0], [-4.0], [-5.0], [-6.0]])
    m3.process_infos({}, torch.tensor([[0], [1]]))  # begun before the copy: counted all the same
    assert m3.objective() == -3.5
