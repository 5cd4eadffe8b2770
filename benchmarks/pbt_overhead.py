"""PBT bookkeeping overhead (issue 4, "What it must show").

Parts (each a function returning rows; ``main`` prints them):

- (a) ``part_a_bookkeeping_share``: share of wall time spent in PBT bookkeeping (every observer hook: per-step
  objective tracking, checkpoint + metadata writes, reading the population, deciding, hot swaps) for a real
  population of 8 Cartpole members on this CPU (goal < 1 %).
- (b) ``part_b_iteration_cost``: one PBT iteration's cost beyond the member's own checkpoint write -- read the
  population's newest metadata from a shared workspace, build the table, decide -- against population sizes
  8/64/256 with synthetic members (goal: < 50 ms at 64).
- (c) ``part_c_exploit_latency``: exploit latency from the decision to the member's next training step, hot swap
  (weights + optimizer loaded in process) vs os.execv restart (until the first env step of the new process),
  read from the lineage logs of the (a) population (hot swaps) and of a ``task_only`` population (restarts)
  (goal: hot swap < 1 s).
- (d) ``part_d_member_switch``: one member switch in a time-sliced slot (``poptrain.pbt.slots``: park the
  outgoing member's weights, optimizer, counters, RNG and env state, load the incoming one's), median over
  the switches of a real slot hosting 2 Cartpole members that switch every epoch, at 1,024 and 4,096 envs
  (goal < 50 ms median at Cartpole size).
- (e) ``part_e_task_param_swap``: a task-parameter change applied live (``pbt/mutation=cartpole_effort``:
  ``task.env.maxEffort``, a live Cartpole key) vs the os.execv restart it replaces (``task_only``: a
  structural task key, same population shape), decision -> next training step, from two real populations;
  plus ``Cartpole.set_live`` alone at 1,024 and 4,096 envs.

Run: ``.venv/bin/python benchmarks/pbt_overhead.py`` (all parts; ``--parts b`` for the synthetic one only).
Population sizes from ``PBT_BENCH_MEMBERS``/``PBT_BENCH_EPOCHS``/``PBT_BENCH_ENVS``; ``PBT_BENCH_DEVICE=cuda``
trains the members on the GPU (``rl_device``/``sim_device``); ``--json PATH`` also writes every part's rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from poptrain.pbt.params import PbtSettings
from poptrain.pbt.selection import candidates_from_metas, decide
from poptrain.pbt.workspace import MemberMeta, Workspace

PARAMS = {
    "train.params.config.learning_rate": 3e-4,
    "train.params.config.entropy_coef": 0.0,
    "train.params.config.e_clip": 0.2,
    "train.params.config.critic_coef": 4.0,
    "train.params.config.grad_norm": 1.0,
    "train.params.config.gamma": 0.99,
    "train.params.config.tau": 0.95,
    "train.params.config.mini_epochs": 8,
}
GOAL_MS_AT_64 = 50.0


def _meta(member: int, iteration: int, n: int, rng: random.Random, now: float) -> MemberMeta:
    return MemberMeta(
        member=member,
        iteration=iteration,
        frames=iteration * 163_840,
        epoch=iteration * 10,
        objective=rng.uniform(0, 500),
        params=dict(PARAMS),
        checkpoint=f"{iteration:06d}.pth",
        experiment=f"cartpole_pbt_p{member}",
        experiment_dir=f"/runs/cartpole_pbt_p{member}",
        time=now - rng.uniform(0, 30),
        num_policies=n,
        parent={"member": (member + 1) % n, "iteration": max(0, iteration - 1)},
        overrides=["task=Cartpole", "pbt=pbt_default", f"pbt.policy_idx={member}"],
    )


def _synthetic_workspace(root: Path, n: int, history: int, rng: random.Random) -> None:
    """n members, ``history`` metadata files each (the newest written by the real writer with its .pth)."""
    ws = Workspace(root)
    now = time.time()
    for member in range(n):
        for it in range(1, history):
            meta = _meta(member, it, n, rng, now - 60)
            path = ws.member_dir(member) / f"{it:06d}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(meta.to_dict()))
        ws.write_checkpoint(_meta(member, history, n, rng, now), {"model": {}, "frame": 0})


def _one_iteration(root: Path, n: int, rng: random.Random) -> float:
    """Seconds for what a member does after writing its own checkpoint: read metadata, rank, decide."""
    params = PbtSettings(enabled=True, num_policies=n, policy_idx=0)
    start = time.perf_counter()
    ws = Workspace(root, stale_after_s=params.stale_after_s)  # fresh object: no reader-side caching
    now = time.time()
    population = ws.read_population(now=now)
    table = candidates_from_metas(population.values(), now)
    decide(0, table, params, rng)
    elapsed = time.perf_counter() - start
    assert len(population) == n, f"expected {n} members, read {len(population)}"
    return elapsed


def part_b_iteration_cost(
    sizes: Sequence[int] = (8, 64, 256), repeats: int = 15, history: int = 10
) -> list[dict]:
    """(b) median cost of one PBT iteration (read + decide) per population size, in a temp workspace."""
    rows = []
    rng = random.Random(0)
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="pbt_overhead_b_") as tmp:
            root = Path(tmp)
            _synthetic_workspace(root, n, history, rng)
            _one_iteration(root, n, rng)  # warm the OS page cache, as in a running population
            times = [_one_iteration(root, n, rng) for _ in range(repeats)]
        med = statistics.median(times)
        rows.append(
            {
                "part": "b",
                "population": n,
                "history_files_per_member": history,
                "median_ms": 1000 * med,
                "min_ms": 1000 * min(times),
                "max_ms": 1000 * max(times),
                "per_member_ms": 1000 * med / n,
            }
        )
    return rows


def _print_b(rows: list[dict]) -> None:
    print("(b) one PBT iteration beyond the own checkpoint write: read population metadata + decide")
    print(f"{'N':>5} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'ms/member':>10}")
    for r in rows:
        print(
            f"{r['population']:>5} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['per_member_ms']:>10.3f}"
        )
    at64 = next((r for r in rows if r["population"] == 64), None)
    if at64:
        ratio = at64["median_ms"] / GOAL_MS_AT_64
        print(f"N=64: {at64['median_ms']:.2f} ms = {ratio:.2f} x the {GOAL_MS_AT_64:.0f} ms goal")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"scaling: N x{last['population'] / first['population']:.0f} -> time "
            f"x{last['median_ms'] / first['median_ms']:.1f}"
        )


# ---- (a) and (c): one real population run -------------------------------------------------------------------
_POPULATION: dict[str, Path] = {}


def _population_workspace(
    n: int = 8, epochs: int = 100, num_envs: int = 1024, mutation: str = "cartpole_env", rate: float = 0.4
) -> Path:
    """Run (once per benchmark process) ``n`` real Cartpole members sharing a temp workspace; return it.

    Mutation set ``cartpole_env`` (live keys + a live task parameter: hot swaps only; ``task_only`` for
    os.execv restarts) and the threshold rule with zero margins make exploits frequent. The interval is pbt_default's
    (163,840 frames = 10 epochs at 1,024 envs x horizon 16)."""
    n = int(os.environ.get("PBT_BENCH_MEMBERS", n))
    epochs = int(os.environ.get("PBT_BENCH_EPOCHS", epochs))
    num_envs = int(os.environ.get("PBT_BENCH_ENVS", num_envs))
    device = os.environ.get("PBT_BENCH_DEVICE", "cpu")
    key = f"{n}-{epochs}-{num_envs}-{mutation}-{rate}-{device}"
    if key in _POPULATION:
        return _POPULATION[key]
    root = Path(tempfile.mkdtemp(prefix="pbt_overhead_"))
    ws = root / "workspace"
    frames_per_epoch = num_envs * 16
    procs = []
    for i in range(n):
        argv = [
            sys.executable,
            "-m",
            "poptrain.train",
            "task=Cartpole",
            f"num_envs={num_envs}",
            f"max_iterations={epochs}",
            f"train_dir={root / 'runs'}",
            f"experiment=m{i}",
            "train.params.config.save_frequency=0",
            "pbt=pbt_default",
            f"pbt/mutation={mutation}",
            f"pbt.num_policies={n}",
            f"pbt.policy_idx={i}",
            f"pbt.workspace={ws}",
            f"pbt.interval_steps={10 * frames_per_epoch}",
            f"pbt.start_after={10 * frames_per_epoch}",
            f"pbt.initial_delay={10 * frames_per_epoch}",
            "pbt.replace_rule=threshold",
            "pbt.threshold_std=0",
            "pbt.threshold_abs=0",
            f"pbt.mutation_rate={rate}",
            f"rl_device={device}",
            f"sim_device={device}",
        ]
        log = (root / f"log{i}.txt").open("w")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)))
    t0 = time.perf_counter()
    codes = [p.wait() for p in procs]
    print(
        f"population of {n} ({mutation}): {epochs} epochs x {frames_per_epoch} frames each, "
        f"wall {time.perf_counter() - t0:.1f} s, exit codes {codes}, workspace {ws}"
    )
    if any(codes):
        raise SystemExit(f"a member failed; logs in {root}")
    _POPULATION[key] = ws
    return ws


def part_a_bookkeeping_share() -> list[dict]:
    ws = Workspace(_population_workspace())
    rows = []
    for member in ws.members():
        final = ws.latest(member)
        assert final is not None and final.finished, f"member {member} did not finish"
        book, wall = float(final.extra["bookkeeping_s"]), float(final.extra["process_s"])
        rows.append(
            {
                "member": member,
                "bookkeeping_s": book,
                "process_s": wall,
                "share": book / wall,
                "iterations": final.iteration,
                "restarts": final.restarts,
                "exploits": final.exploits,
            }
        )
    return rows


def _print_a(rows: list[dict]) -> None:
    print("\n(a) share of wall time in PBT bookkeeping (all observer hooks), population of", len(rows))
    print(f"{'member':>6} {'iter':>5} {'rst':>4} {'exp':>4} {'pbt s':>8} {'wall s':>8} {'share':>8}")
    for r in rows:
        print(
            f"{r['member']:>6} {r['iterations']:>5} {r['restarts']:>4} {r['exploits']:>4} "
            f"{r['bookkeeping_s']:>8.3f} {r['process_s']:>8.2f} {100 * r['share']:>7.3f}%"
        )
    total = sum(r["bookkeeping_s"] for r in rows) / sum(r["process_s"] for r in rows)
    print(
        f"population: {100 * total:.3f} % of member wall time (goal < 1 %: ratio to goal {total / 0.01:.2f})"
    )


def part_c_exploit_latency() -> list[dict]:
    """Hot swaps from the (a) population (``cartpole_env``: every key live); restarts from a population of 4
    whose only mutable key is structural (``task_only``), where every exploit restarts."""
    events = Workspace(_population_workspace()).read_lineage()
    events += Workspace(_population_workspace(n=4, mutation="task_only")).read_lineage()
    hot = [e.extra["latency_s"] for e in events if e.event == "exploit" and e.mode == "hot_swap"]
    restart = [e.extra["latency_s"] for e in events if e.event == "restart"]
    rows = []
    for kind, values in (("hot_swap", hot), ("os.execv restart", restart)):
        if values:
            rows.append(
                {
                    "kind": kind,
                    "n": len(values),
                    "median_s": statistics.median(values),
                    "min_s": min(values),
                    "max_s": max(values),
                }
            )
    return rows


def _print_c(rows: list[dict]) -> None:
    print("\n(c) exploit latency: decision -> next training step")
    for r in rows:
        print(
            f"{r['kind']:>17}: n={r['n']:>3} median {r['median_s']:.4f} s  min {r['min_s']:.4f}  max {r['max_s']:.4f}"
        )
    by = {r["kind"]: r for r in rows}
    if len(by) == 2:
        h, x = by["hot_swap"], by["os.execv restart"]
        print(
            f"restart / hot swap (medians): {x['median_s'] / h['median_s']:.0f}x; "
            f"hot swap goal < 1 s: ratio to goal {h['max_s'] / 1.0:.3f} (max)"
        )


def part_d_member_switch(sizes: Sequence[int] = (1024, 4096), epochs: int = 40) -> list[dict]:
    """(d) median member switch of a real slot process (2 members, a switch every epoch) per env count."""
    import re

    rows = []
    for num_envs in sizes:
        root = Path(tempfile.mkdtemp(prefix="pbt_overhead_d_"))
        frames_per_epoch = num_envs * 16
        shared = [
            "task=Cartpole",
            f"num_envs={num_envs}",
            f"max_iterations={epochs}",
            f"train_dir={root / 'runs'}",
            "train.params.config.save_frequency=0",
            "pbt=pbt_default",
            "pbt/mutation=cartpole_env",
            "pbt.num_policies=2",
            f"pbt.workspace={root / 'ws'}",
            f"pbt.interval_steps={frames_per_epoch}",
            f"pbt.start_after={frames_per_epoch}",
            f"pbt.initial_delay={frames_per_epoch}",
        ]
        argv = [
            sys.executable,
            "-m",
            "poptrain.pbt.slots",
            "--slot",
            "0",
            "--member",
            "pbt.policy_idx=0",
            "experiment=m0",
            "--member",
            "pbt.policy_idx=1",
            "experiment=m1",
            "--",
            *shared,
        ]
        t0 = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ))
        wall = time.perf_counter() - t0
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("slot: ")), "")
        if out.returncode or not line:
            raise SystemExit(f"slot failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}")
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        status = yaml.safe_load((root / "ws" / "slots" / "slot_0.json").read_text())
        rows.append(
            {
                "part": "d",
                "num_envs": num_envs,
                "switches": int(fields["switches"]),
                "median_ms": float(fields["switch_median_ms"]),
                "total_switch_s": float(status["switch_s"]),
                "slot_wall_s": float(status["wall_s"]),
                "process_wall_s": wall,
            }
        )
    return rows


def _print_d(rows: list[dict]) -> None:
    print("\n(d) member switch in a time-sliced slot (park + load: weights, optimizer, counters, RNG, env)")
    print(f"{'envs':>6} {'switches':>9} {'median ms':>10} {'switch s':>9} {'slot wall s':>12} {'share':>7}")
    for r in rows:
        share = r["total_switch_s"] / r["slot_wall_s"]
        print(
            f"{r['num_envs']:>6} {r['switches']:>9} {r['median_ms']:>10.2f} {r['total_switch_s']:>9.3f} "
            f"{r['slot_wall_s']:>12.2f} {100 * share:>6.2f}%"
        )
    first = rows[0]
    print(
        f"{first['num_envs']} envs: {first['median_ms']:.2f} ms = {first['median_ms'] / 50.0:.2f} x the 50 ms goal"
    )


def set_live_cost(num_envs: int, repeats: int = 200) -> float:
    """Median seconds of ``Cartpole.set_live({"maxEffort": ...})`` on a running batch of ``num_envs``."""
    import torch

    from poptrain.tasks.cartpole import Cartpole

    task = Cartpole({}, num_envs=num_envs)
    task.reset()
    task.step(torch.zeros(num_envs, 1))
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        task.set_live({"maxEffort": 10.0 + i % 7})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def part_e_task_param_swap() -> list[dict]:
    """(e) a task-parameter change: live (hot swap) vs os.execv restart, two populations of 4 of the same shape."""
    # rate 1: with one mutable key, a lower rate can leave all members identical (ties: no exploit ever)
    hot_events = Workspace(_population_workspace(n=4, mutation="cartpole_effort", rate=1.0)).read_lineage()
    restart_events = Workspace(_population_workspace(n=4, mutation="task_only", rate=1.0)).read_lineage()
    hot = [
        e.extra["latency_s"]
        for e in hot_events
        if e.event == "exploit" and e.mode == "hot_swap" and "task.env.maxEffort" in e.changed
    ]
    restart = [e.extra["latency_s"] for e in restart_events if e.event == "restart"]
    stray = [e for e in hot_events if e.event == "restart"]
    if stray:
        raise SystemExit(f"the live task parameter restarted a member: {stray[0]}")
    rows = []
    for kind, values in (("task key hot swap", hot), ("os.execv restart", restart)):
        if values:
            rows.append(
                {
                    "kind": kind,
                    "n": len(values),
                    "median_s": statistics.median(values),
                    "min_s": min(values),
                    "max_s": max(values),
                }
            )
    for n in (1024, 4096):
        rows.append(
            {"kind": f"set_live {n} envs", "n": 200, "median_s": set_live_cost(n), "min_s": 0.0, "max_s": 0.0}
        )
    return rows


def _print_e(rows: list[dict]) -> None:
    print("\n(e) task-parameter change: decision -> next training step (exploit latency), and set_live alone")
    for r in rows:
        print(
            f"{r['kind']:>20}: n={r['n']:>3} median {r['median_s']:.6f} s  min {r['min_s']:.4f}  "
            f"max {r['max_s']:.4f}"
        )
    by = {r["kind"]: r for r in rows}
    if "task key hot swap" in by and "os.execv restart" in by:
        h, x = by["task key hot swap"], by["os.execv restart"]
        print(f"restart / task-key hot swap (medians): {x['median_s'] / h['median_s']:.0f}x")


PARTS: dict[str, tuple[Callable[..., list[dict]], Callable[[list[dict]], None]]] = {
    "a": (part_a_bookkeeping_share, _print_a),
    "b": (part_b_iteration_cost, _print_b),
    "c": (part_c_exploit_latency, _print_c),
    "d": (part_d_member_switch, _print_d),
    "e": (part_e_task_param_swap, _print_e),
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--parts", default="".join(PARTS), help=f"which parts to run (available: {''.join(PARTS)})"
    )
    ap.add_argument("--sizes", default="8,64,256", help="population sizes for part b")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default="", help="also write every part's rows to this file")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; available: {sorted(PARTS)}")
    figures: dict[str, list[dict]] = {}
    for part in args.parts:
        fn, show = PARTS[part]
        if part == "b":
            rows = fn(sizes=[int(s) for s in args.sizes.split(",")], repeats=args.repeats)
        else:
            rows = fn()
        show(rows)
        figures[part] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
