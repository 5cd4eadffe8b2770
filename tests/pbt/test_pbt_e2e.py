"""End to end: real population members (rl_games processes) exchanging weights through a workspace.

- in CI (fast): a population of 2 for 48 epochs: the worse member exploits the better one by a hot swap, both
  keep their own frame budget, ``best/`` is exported and plays;
- marked ``slow`` (minutes on 2 cores; ``make slow``):
- a population of 4 on Cartpole mutating only live hyperparameters (``pbt/mutation=default_mutation``): every
  exploit is a hot swap (no restart), lineage.jsonl records them, every member keeps its own frame budget,
  ``best/`` is exported and plays;
- a population of 3 mutating only a task parameter (``pbt/mutation=task_only``): every exploit restarts the
  member with os.execv and the new process runs with the new value, the copied weights and its own budget;
- kill -9 of one member of a population of 3 mid-run: the others finish, and starting it again resumes it from
  its own checkpoint.

Two mutation sets make the path every exploit takes a function of the config, not of the race between members.
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
import torch

from poptrain.pbt.workspace import Workspace

EPOCH_FRAMES = 128 * 16  # num_envs x horizon_length


def member_argv(
    ws: Path, train_dir: Path, idx: int, n: int, epochs: int, mutation: str, rate: float = 0.5
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "poptrain.train",
        "task=Cartpole",
        "num_envs=128",
        f"max_iterations={epochs}",
        f"train_dir={train_dir}",
        f"experiment=member_{idx}",
        "train.params.config.save_frequency=0",
        "pbt=pbt_default",
        f"pbt/mutation={mutation}",
        f"pbt.num_policies={n}",
        f"pbt.policy_idx={idx}",
        f"pbt.workspace={ws}",
        f"pbt.interval_steps={8 * EPOCH_FRAMES}",
        f"pbt.start_after={8 * EPOCH_FRAMES}",
        f"pbt.initial_delay={8 * EPOCH_FRAMES}",
        "pbt.replace_rule=threshold",
        "pbt.threshold_std=0",
        "pbt.threshold_abs=0",
        f"pbt.mutation_rate={rate}",
        "pbt.objective_grace_steps=0",
    ]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("POPTRAIN_PBT_RESTART", None)
    return subprocess.Popen(
        argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


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
    return dict(kv.split("=", 1) for kv in lines[0][len("train: ") :].split(" "))


def test_fast_population_hot_swaps_keeps_budgets_and_exports_best(tmp_path):
    ws = tmp_path / "workspace"
    argvs = [
        member_argv(ws, tmp_path / "runs", i, 2, epochs=48, mutation="default_mutation") for i in range(2)
    ]
    procs = [start(argv, tmp_path / f"log{i}.txt") for i, argv in enumerate(argvs)]
    codes = wait_all(procs, timeout=400)
    assert codes == [0, 0], [(tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(2)]
    for i in range(2):
        line = train_line(tmp_path / f"log{i}.txt")
        assert int(line["frames"]) == 48 * EPOCH_FRAMES and f"member_{i}" in line["checkpoint"], line
    w = Workspace(ws)
    events = w.read_lineage()
    # threshold rule with zero margins over 2 members: at every iteration after start_after the worse one copies
    # the better one (unless both objectives are exactly equal), and live params always hot-swap
    exploits = [e for e in events if e.event == "exploit"]
    assert exploits, events
    assert all(e.mode == "hot_swap" and e.source == 1 - e.member for e in exploits), exploits
    assert all(e.extra["latency_s"] >= 0 for e in exploits)
    assert all(w.latest(m).finished for m in range(2))
    best = ws / "best"
    assert (best / "checkpoint.pth").is_file() and (best / "config.yaml").is_file()
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "play", str(ws), "num_envs=16", "play_episodes=4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert [ln for ln in out.stdout.splitlines() if ln.startswith("play: episodes=4 ")]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbt_e2e")
    ws = root / "workspace"
    # own seeds (different initial weights) and every checkpoint kept: the hot-swap test compares weights
    argvs = [
        member_argv(ws, root / "runs", i, 4, epochs=120, mutation="default_mutation")
        + [f"seed={42 + i}", "pbt.keep_checkpoints=1000"]
        for i in range(4)
    ]
    procs = [start(argv, root / f"log{i}.txt") for i, argv in enumerate(argvs)]
    codes = wait_all(procs, timeout=420)
    return root, ws, codes


@pytest.mark.slow
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


@pytest.mark.slow
def test_lineage_records_hot_swaps(population):
    _, ws, _ = population
    events = Workspace(ws).read_lineage()
    exploits = [e for e in events if e.event == "exploit"]
    assert exploits, events
    for e in exploits:
        assert e.mode == "hot_swap", e  # every mutable key is live: never a restart
        assert e.source != e.member and 0 <= e.source < 4
        assert e.frames > 0 and e.iteration > 0 and e.time > 0
        assert set(e.new_params) == set(e.old_params)
        assert e.extra["latency_s"] >= 0  # a duration, not a bound: benchmarks/pbt_overhead.py measures it
    assert not [e for e in events if e.event == "restart"]
    # initial mutation: exactly once per member except member 0
    initial = sorted(e.member for e in events if e.event == "mutate" and e.mode == "initial")
    assert initial == [1, 2, 3]


@pytest.mark.slow
def test_hot_swapped_member_trains_on_with_the_leaders_weights_and_new_params(population):
    _, ws, _ = population
    w = Workspace(ws)
    swap = next(e for e in w.read_lineage() if e.event == "exploit")
    history = w.member_history(swap.member)
    after = [m for m in history if m.iteration > swap.iteration]
    assert after, "no checkpoint after the hot swap"
    assert after[0].params == swap.new_params
    assert after[0].parent == {"member": swap.source, "iteration": swap.source_iteration}
    assert after[0].restarts == 0 and after[0].exploits >= 1
    # the weights themselves: the first checkpoint after the swap is the leader's copied checkpoint trained on for
    # one interval, not the member's own weights. Members start from different seeds, so before the first exploit
    # their networks differ by their random initialisation (measured on the 2-member run: leader vs own 9.3, one
    # interval of training 2.2; see the assertion's message for this run's figures)
    (own,) = [m for m in history if m.iteration == swap.iteration]
    (leader,) = [m for m in w.member_history(swap.source) if m.iteration == swap.source_iteration]
    trained, copied, before = (network(w.load_state(m)) for m in (after[0], leader, own))
    to_copied, to_own = distance(trained, copied), distance(trained, before)
    figures = (
        f"distance to the leader's copied weights {to_copied:.3f}, to its own pre-swap weights {to_own:.3f}"
    )
    assert to_copied < 0.5 * to_own, figures
    # and the leader's weights did differ from the member's own (a swap between equal networks proves nothing)
    assert distance(copied, before) > 2 * to_copied, figures


def network(state: dict) -> dict[str, torch.Tensor]:
    """The policy/value network's parameters of a workspace checkpoint (normalisers and counters left out: their
    counts measure training history, not weights)."""
    return {k: v.float() for k, v in state["model"].items() if k.startswith("a2c_network.")}


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Euclidean distance between two networks with the same parameter names and shapes."""
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


@pytest.mark.slow
def test_best_is_exported_and_plays(population):
    _, ws, _ = population
    best = ws / "best"
    assert (best / "checkpoint.pth").is_file() and (best / "config.yaml").is_file()
    w = Workspace(ws)
    finals = {m: w.latest(m) for m in range(4)}
    assert all(f is not None and f.finished for f in finals.values())
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "play", str(ws), "num_envs=32", "play_episodes=8"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    plays = [ln for ln in out.stdout.splitlines() if ln.startswith("play: ")]
    assert len(plays) == 1 and re.match(r"play: episodes=8 mean_return=[-\d.]+ mean_length=[\d.]+$", plays[0])


@pytest.mark.slow
def test_kill9_member_others_finish_and_it_resumes(tmp_path):
    ws, runs = tmp_path / "ws", tmp_path / "runs"
    argvs = [member_argv(ws, runs, i, 3, epochs=160, mutation="default_mutation") for i in range(3)]
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
    resumes = [e for e in w.read_lineage() if e.event == "resume"]
    assert [e.member for e in resumes] == [2]
    assert resumes[0].iteration >= killed_at.iteration
    history = w.member_history(2)
    assert [m.iteration for m in history] == sorted({m.iteration for m in history})
    final = w.latest(2)
    assert final.finished and final.frames == 160 * EPOCH_FRAMES
    assert final.iteration > killed_at.iteration
    assert int(train_line(tmp_path / "log2b.txt")["frames"]) == 160 * EPOCH_FRAMES
    # nothing half-written was left behind by the kill
    assert not [p for p in ws.rglob("*") if p.name.endswith(".tmp")]

    for i in range(2):
        assert int(train_line(tmp_path / f"log{i}.txt")["frames"]) == 160 * EPOCH_FRAMES


@pytest.fixture(scope="module")
def restart_population(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbt_restart")
    ws = root / "workspace"
    argvs = [
        member_argv(ws, root / "runs", i, 3, epochs=100, mutation="task_only", rate=1.0) for i in range(3)
    ]
    procs = [start(argv, root / f"log{i}.txt") for i, argv in enumerate(argvs)]
    return root, ws, wait_all(procs, timeout=420)


@pytest.mark.slow
def test_task_parameter_changes_restart_the_member_with_the_new_value(restart_population):
    root, ws, codes = restart_population
    assert codes == [0, 0, 0], [(root / f"log{i}.txt").read_text()[-2000:] for i in range(3)]
    w = Workspace(ws)
    events = w.read_lineage()
    # only a task parameter mutates, always (rate 1): every exploit restarts its member with os.execv ...
    exploits = [e for e in events if e.event == "exploit"]
    assert exploits and all(
        e.mode == "restart" and e.changed == ["task.env.maxEpisodeLength"] for e in exploits
    )
    decisions = [e for e in events if e.mode == "restart" and e.event in ("exploit", "mutate")]
    restarts = [e for e in events if e.event == "restart"]
    # ... every decision is followed by the member coming back, with a measured latency ...
    assert sorted((e.member, e.iteration) for e in restarts) == sorted(
        (e.member, e.iteration) for e in decisions
    )
    assert all(
        e.extra["latency_s"] > 0 for e in restarts
    )  # measured, not bounded (benchmarks/pbt_overhead.py)
    # ... running with the new value, the copied weights' parent, and its own counters and budget
    for decision in decisions:
        after = [m for m in w.member_history(decision.member) if m.iteration > decision.iteration]
        assert after, decision
        assert after[0].params == decision.new_params
        assert after[0].restarts >= 1
        assert any(o.startswith("task.env.maxEpisodeLength=") for o in after[0].overrides)
        if decision.event == "exploit":
            assert after[0].parent == {"member": decision.source, "iteration": decision.source_iteration}
    for i in range(3):
        line = train_line(root / f"log{i}.txt")
        assert int(line["frames"]) == 100 * EPOCH_FRAMES and f"member_{i}" in line["checkpoint"]
