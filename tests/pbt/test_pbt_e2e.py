"""End to end: real population members (rl_games processes) exchanging weights through a workspace.

- a population of 4 on Cartpole: exploits happen both as hot swaps (only live params differ) and as os.execv
  restarts (the task parameter ``task.env.maxEffort`` differs), lineage.jsonl records them, every member keeps
  its own frame budget, ``best/`` is exported and plays;
- kill -9 of one member mid-run: the others finish, and starting it again resumes it from its own checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poptrain.pbt.workspace import Workspace

EPOCH_FRAMES = 128 * 16  # num_envs x horizon_length


def member_argv(ws: Path, train_dir: Path, idx: int, n: int, epochs: int, extra: list[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "poptrain.train", "task=Cartpole", "num_envs=128", f"max_iterations={epochs}",
        f"train_dir={train_dir}", f"experiment=member_{idx}", "train.params.config.save_frequency=0",
        "pbt=pbt_default", "pbt/mutation=cartpole_env", f"pbt.num_policies={n}", f"pbt.policy_idx={idx}",
        f"pbt.workspace={ws}", f"pbt.interval_steps={8 * EPOCH_FRAMES}", f"pbt.start_after={8 * EPOCH_FRAMES}",
        f"pbt.initial_delay={8 * EPOCH_FRAMES}", "pbt.replace_rule=threshold", "pbt.threshold_std=0",
        "pbt.threshold_abs=0", "pbt.mutation_rate=0.4", "pbt.objective_grace_steps=0", *extra,
    ]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("POPTRAIN_PBT_RESTART", None)
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            codes.append(-9)
    return codes


def train_line(log: Path) -> dict[str, str]:
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("train: ")]
    assert len(lines) == 1, log.read_text()[-3000:]
    return dict(kv.split("=", 1) for kv in lines[0][len("train: "):].split(" "))


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbt_e2e")
    ws = root / "workspace"
    procs = [start(member_argv(ws, root / "runs", i, 4, epochs=120), root / f"log{i}.txt") for i in range(4)]
    codes = wait_all(procs, timeout=420)
    return root, ws, codes


def test_every_member_finishes_with_its_own_budget(population):
    root, ws, codes = population
    logs = {i: (root / f"log{i}.txt").read_text()[-2000:] for i in range(4)}
    assert codes == [0, 0, 0, 0], logs
    for i in range(4):
        line = train_line(root / f"log{i}.txt")
        # os.execv restarts and hot swaps keep the member's own counters: same budget for everybody
        assert int(line["frames"]) == 120 * EPOCH_FRAMES, (i, line)
        assert Path(line["checkpoint"]).is_file()
        assert f"member_{i}" in line["checkpoint"]  # its own experiment folder, even after copying weights


def test_lineage_records_hot_swaps_and_restarts(population):
    _, ws, _ = population
    events = Workspace(ws).read_lineage()
    exploits = [e for e in events if e["event"] == "exploit"]
    assert exploits, events
    modes = {e["mode"] for e in exploits}
    assert modes == {"hot_swap", "restart"}, [(e["member"], e["mode"], e["changed"]) for e in exploits]
    for e in exploits:
        assert e["source"] != e["member"] and 0 <= e["source"] < 4
        assert e["frames"] > 0 and e["iteration"] > 0 and e["time"] > 0
        assert set(e["new_params"]) == set(e["old_params"])
        live_only = all(k.startswith("train.params.config.") for k in e["changed"])
        assert (e["mode"] == "hot_swap") == live_only, e
    # every restart decision is followed by that member coming back (event 'restart') with a latency
    restarts = [e for e in events if e["event"] == "restart"]
    restart_decisions = [e for e in events if e.get("mode") == "restart" and e["event"] in ("exploit", "mutate")]
    assert len(restarts) == len(restart_decisions) >= 1
    assert all(0 < e["latency_s"] < 120 for e in restarts)
    hot = [e for e in exploits if e["mode"] == "hot_swap"]
    assert all(0 <= e["latency_s"] < 1.0 for e in hot)
    # initial mutation: exactly once per member except member 0
    initial = sorted(e["member"] for e in events if e["event"] == "mutate" and e.get("mode") == "initial")
    assert initial == [1, 2, 3]


def test_restarted_member_runs_with_the_new_params(population):
    _, ws, _ = population
    w = Workspace(ws)
    restart = next(e for e in w.read_lineage() if e["event"] == "exploit" and e["mode"] == "restart")
    after = [m for m in w.member_history(restart["member"]) if m.iteration > restart["iteration"]]
    assert after, "no checkpoint after the restart"
    assert after[0].params == restart["new_params"]
    assert after[0].parent == {"member": restart["source"], "iteration": restart["source_iteration"]}
    assert after[0].restarts >= 1 and after[0].exploits >= 1
    assert any(o.startswith("task.env.maxEffort=") for o in after[0].overrides)


def test_best_is_exported_and_plays(population):
    _, ws, _ = population
    best = ws / "best"
    assert (best / "checkpoint.pth").is_file() and (best / "config.yaml").is_file()
    w = Workspace(ws)
    finals = {m: w.latest(m) for m in range(4)}
    assert all(f is not None and f.finished for f in finals.values())
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "play", str(ws), "num_envs=32", "play_episodes=8"],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    plays = [ln for ln in out.stdout.splitlines() if ln.startswith("play: ")]
    assert len(plays) == 1 and re.match(r"play: episodes=8 mean_return=[-\d.]+ mean_length=[\d.]+$", plays[0])


def test_kill9_member_others_finish_and_it_resumes(tmp_path):
    ws, runs = tmp_path / "ws", tmp_path / "runs"
    argvs = [member_argv(ws, runs, i, 3, epochs=160) for i in range(3)]
    procs = [start(argvs[i], tmp_path / f"log{i}.txt") for i in range(3)]
    w = Workspace(ws)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(w.member_history(2)) < 3 and procs[2].poll() is None:
        time.sleep(0.2)
    assert procs[2].poll() is None, "member 2 ended before it could be killed"
    os.killpg(procs[2].pid, signal.SIGKILL)
    procs[2].wait()
    killed_at = w.latest(2)
    assert killed_at is not None and not killed_at.finished
    assert wait_all(procs[:2], timeout=300) == [0, 0]

    # start member 2 again with the same idx: it resumes from its own newest checkpoint
    again = start(argvs[2], tmp_path / "log2b.txt")
    assert wait_all([again], timeout=300) == [0], (tmp_path / "log2b.txt").read_text()[-3000:]
    resumes = [e for e in w.read_lineage() if e["event"] == "resume"]
    assert [e["member"] for e in resumes] == [2]
    assert resumes[0]["iteration"] >= killed_at.iteration
    history = w.member_history(2)
    assert [m.iteration for m in history] == sorted({m.iteration for m in history})
    final = w.latest(2)
    assert final.finished and final.frames == 160 * EPOCH_FRAMES
    assert final.iteration > killed_at.iteration
    assert int(train_line(tmp_path / "log2b.txt")["frames"]) == 160 * EPOCH_FRAMES
    # nothing half-written was left behind by the kill
    assert not [p for p in ws.rglob("*") if p.name.endswith(".tmp")]
