"""End to end: a real population that mutates a task parameter (``pbt/mutation=cartpole_env``, which includes
``task.env.maxEffort``) runs with hot swaps only, never an os.execv restart, and the running env really takes
the new values (the lineage records what the task reads back after each swap)."""

from __future__ import annotations

from test_pbt_e2e import EPOCH_FRAMES, member_argv, start, train_line, wait_all

from poptrain.pbt.workspace import Workspace

EPOCHS = 64


def test_env_mutations_are_hot_swaps_never_restarts(tmp_path):
    ws = tmp_path / "workspace"
    # mutation_rate 1: every mutation and every exploit's mutation changes maxEffort too
    argvs = [
        member_argv(ws, tmp_path / "runs", i, 3, epochs=EPOCHS, mutation="cartpole_env", rate=1.0)
        for i in range(3)
    ]
    codes = wait_all([start(argv, tmp_path / f"log{i}.txt") for i, argv in enumerate(argvs)], timeout=420)
    assert codes == [0, 0, 0], [(tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(3)]

    w = Workspace(ws)
    events = w.read_lineage()
    assert not [e for e in events if e.event == "restart"], events
    decisions = [e for e in events if e.event in ("exploit", "mutate") and e.mode != "initial"]
    assert [e for e in decisions if e.event == "exploit"], events
    effort = "task.env.maxEffort"
    swapped = [e for e in decisions if effort in e.changed]
    assert swapped, decisions
    for e in decisions:
        assert e.mode == "hot_swap", e
    for e in swapped:
        # the running task reports the new value, and the member's next checkpoint carries it
        assert e.extra["applied"][effort] == e.new_params[effort] != e.old_params[effort], e
        after = [m for m in w.member_history(e.member) if m.iteration > e.iteration]
        assert after and after[0].params[effort] == e.new_params[effort] and after[0].restarts == 0
    for i in range(3):
        assert int(train_line(tmp_path / f"log{i}.txt")["frames"]) == EPOCHS * EPOCH_FRAMES
