"""A real CPU population whose intervals take far longer than ``pbt.stale_after_s`` still exploits (issue 9).

Three rl_games members on Cartpole with ``pbt.stale_after_s=0.001``: on wall clock alone every peer is stale
a millisecond after it wrote, the population would never replace anybody; staleness relative to each
member's own interval duration (``stale_interval_factor`` x interval) keeps them all valid.
"""

from __future__ import annotations

from test_pbt_e2e import EPOCH_FRAMES, member_argv, start, wait_all

from poptrain.pbt.workspace import Workspace


def test_population_with_stale_after_far_below_the_interval_still_exploits(tmp_path):
    ws = tmp_path / "workspace"
    procs = []
    for i in range(3):
        argv = member_argv(ws, tmp_path / "runs", i, 3, epochs=40, mutation="default_mutation")
        argv = [
            a
            for a in argv
            if not a.startswith(("pbt.interval_steps=", "pbt.start_after=", "pbt.initial_delay="))
        ]
        argv += [
            f"pbt.interval_steps={4 * EPOCH_FRAMES}",
            f"pbt.start_after={4 * EPOCH_FRAMES}",
            f"pbt.initial_delay={4 * EPOCH_FRAMES}",
            "pbt.stale_after_s=0.001",
        ]
        procs.append(start(argv, tmp_path / f"log{i}.txt"))
    codes = wait_all(procs, timeout=400)
    assert codes == [0, 0, 0], [(tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(3)]
    w = Workspace(ws)
    intervals = [m.extra["interval_s"] for i in range(3) for m in w.member_history(i)[1:]]
    assert intervals and min(intervals) > 10 * 0.001  # every interval took far longer than stale_after_s
    exploits = [e for e in w.read_lineage() if e.event == "exploit"]
    assert exploits, [(tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(3)]
