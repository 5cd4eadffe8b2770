"""PBT bookkeeping overhead (issue 4, "What it must show").

Parts (each a function returning rows; ``main`` prints them):

- (a) share of wall time spent in PBT bookkeeping for a population of 8 (goal < 1 %) -- to be added by the lead
  (needs the observer and real training runs).
- (b) ``part_b_iteration_cost``: one PBT iteration's cost beyond the member's own checkpoint write -- read the
  population's newest metadata from a shared workspace, build the table, decide -- against population sizes
  8/64/256 with synthetic members (goal: < 50 ms at 64).
- (c) exploit latency, hot swap vs os.execv restart (goal: hot swap < 1 s) -- to be added by the lead.

Run: ``.venv/bin/python benchmarks/pbt_overhead.py --parts b``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from poptrain.pbt.params import PbtParams
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
    params = PbtParams(enabled=True, num_policies=n, policy_idx=0)
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


PARTS: dict[str, tuple[Callable[..., list[dict]], Callable[[list[dict]], None]]] = {
    "b": (part_b_iteration_cost, _print_b),
    # "a": (part_a_bookkeeping_share, _print_a),  -- added by the lead
    # "c": (part_c_exploit_latency, _print_c),    -- added by the lead
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--parts", default="".join(PARTS), help=f"which parts to run (available: {''.join(PARTS)})"
    )
    ap.add_argument("--sizes", default="8,64,256", help="population sizes for part b")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; available: {sorted(PARTS)}")
    for part in args.parts:
        fn, show = PARTS[part]
        if part == "b":
            rows = fn(sizes=[int(s) for s in args.sizes.split(",")], repeats=args.repeats)
        else:
            rows = fn()
        show(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
