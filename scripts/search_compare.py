"""Search strategies side by side with the same trainer, budget and seeds (issue 14's evaluation; not CI).

    .venv/bin/python scripts/search_compare.py --task acrobot --rounds 6 [--epochs E] [--num-envs 512] \\
        [--arms fixed,random,pbt,perturb,pb2] [--first-round 0] [--out DIR]
    .venv/bin/python scripts/search_compare.py --summary DIR      # tables from DIR/results.json only

Tasks: ``acrobot`` = AcrobotHard, mutation set ``acrobot_showcase`` (objective: success rate, target 0.8);
``pendulum`` = PendulumGeneric (Pendulum with gamma 0.99, the generic default, where ~0.95 is what works),
mutation set ``default_mutation`` (objective: episode return, target -200), 50 epochs (0.41 M env steps per
run at 512 envs; a PBT interval every 5 epochs): on seed 5, gamma 0.99 is at -246 after 50 epochs where 0.95 is
at -157 (both reach ~-155 by epoch 100, so a longer budget would hide the difference).

Arms (``--members`` runs each, seeds ``1 + round * members + i``, the same seeds in every arm: paired):

- ``fixed``: the default configuration, each run alone;
- ``random``: random search over the same space: run i draws every key from its prior (uniform in the key's
  search space over its declared range, ``poptrain.pbt.explore.sample_value``), each run alone;
- ``pbt``: today's PBT (``pbt=pbt_default``: the legacy operators, one initial mutation per member, no noise
  gate), same mutation set;
- ``perturb``: ``pbt=pbt_search`` (Latin hypercube start within a quarter of each range of the defaults, member
  0 at them; no decision before the objective has signal; members compared at the same frame count
  (``pbt.compare=synch``); perturbation that can cross each range within the run's decisions, resampling 0.25;
  exploit only beyond 2 standard errors);
- ``pb2``: ``pbt=pbt_search pbt.explore=pb2``; ``resample``: ``pbt=pbt_search pbt.explore=resample``.

``--set pbt.KEY=VALUE`` (repeatable) adds overrides to the pbt_search arms (use a separate ``--out`` per set);
``--config KEY=VALUE`` (repeatable) changes the task's configuration for every arm (``--arms fixed --config
train.params.config.gamma=0.95`` on pendulum: the defaults with the known answer, a ceiling for the search).

``perturb`` and ``pb2`` draw their initial Latin hypercube with ``pbt.sample_seed`` = the round's first seed
(the figures in benchmarks/RESULTS-search.md were measured before this: every round had sample seed 0).

Every run is a PBT member process (alone runs are populations of 1), so one observer measures the same objective
(the window of the last max(100, num_envs) finished episodes) for every arm. Runs of one arm run at the same
time; arms run one after another. After every arm, every row so far is written to ``<out>/results.json``
(atomically), so an interrupted evaluation keeps its finished rounds. The summary gives, per arm: the mean over
rounds of the best of ``members`` and of the mean of ``members``, the runs above the target, and a paired sign
test (two-sided binomial on the rounds where the arm's best-of-N beats / loses to the baseline's), and the rounds
where the arm's best-of-N and mean are both strictly above both fixed's and random's (issue 14's goal).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from poptrain.experiments.acrobot_search import overrides
from poptrain.pbt.explore import sample_value, search_dims
from poptrain.pbt.mutation import parse_specs
from poptrain.pbt.workspace import Workspace

TASKS: dict[str, dict[str, Any]] = {
    "acrobot": {
        "task": "AcrobotHard",
        "mutation": "acrobot_showcase",
        "target": 0.8,
        "what": "success rate",
        "epochs": 150,
        "interval": 10,
    },
    "pendulum": {
        "task": "PendulumGeneric",
        "mutation": "default_mutation",
        "target": -200.0,
        "what": "return",
        "epochs": 50,
        "interval": 5,
    },
}
ARMS = ("fixed", "random", "pbt", "perturb", "pb2", "resample")
SEARCH_ARMS = ("perturb", "pb2", "resample")  # pbt=pbt_search (+ --set overrides)
CFG = Path(__file__).resolve().parents[1] / "src" / "poptrain" / "cfg"


def random_params(mutation: str, run_seed: str) -> dict[str, Any]:
    """One random-search configuration: every key of the mutation set drawn from its prior."""
    import yaml

    specs = parse_specs(yaml.safe_load((CFG / "pbt" / "mutation" / f"{mutation}.yaml").read_text()))
    dims, problems = search_dims(specs)
    if problems:
        raise SystemExit("; ".join(problems))
    rng = random.Random(run_seed)
    return {d.key: sample_value(d, rng) for d in dims}


def run_arm(
    root: Path,
    task: str,
    arm: str,
    members: int,
    epochs: int,
    num_envs: int,
    seed0: int,
    extra: tuple[str, ...] = (),
    config: tuple[str, ...] = (),
) -> list[dict]:
    spec = TASKS[task]
    procs = []
    for i in range(members):
        seed = seed0 + i
        alone = arm in ("fixed", "random")
        search = {"fixed": "pbt_default", "random": "pbt_default", "pbt": "pbt_default"}.get(
            arm, "pbt_search"
        )
        argv = [
            sys.executable, "-m", "poptrain.train",
            *overrides(1 if alone else members, epochs, num_envs, search, spec["task"], spec["mutation"],
                       spec["interval"]),
            f"pbt.policy_idx={0 if alone else i}", f"seed={seed}", f"train_dir={root / 'runs'}",
            f"pbt.workspace={root / (f'{arm}_ws_{i}' if alone else f'{arm}_ws')}", f"experiment={arm}_{i}",
        ]  # fmt: skip
        if arm in ("pb2", "resample"):
            argv.append(f"pbt.explore={arm}")
        if arm in SEARCH_ARMS:  # a fresh Latin hypercube per round (the rounds are replicates)
            argv += [f"pbt.sample_seed={seed0}", *extra]
        argv += list(config)  # a variant of the task's configuration, for every arm (e.g. the oracle below)
        params = random_params(spec["mutation"], f"{task}-{seed}") if arm == "random" else {}
        argv += [f"{k}={v!r}" for k, v in params.items()]
        log = (root / f"{arm}_{i}.log").open("w")
        procs.append((i, seed, alone, params, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))
    rows = []
    for i, seed, alone, params, proc in procs:
        code = proc.wait()
        ws = Workspace(root / (f"{arm}_ws_{i}" if alone else f"{arm}_ws"))
        final = ws.latest(0 if alone else i)
        figures = final.extra if final else {}
        rows.append({
            "task": task, "arm": arm, "run": i, "seed": seed, "exit": code,
            "objective": final.objective if final else math.nan, "se": figures.get("objective_se"),
            "window": figures.get("objective_n"), "frames": final.frames if final else 0,
            "carried_from": figures.get("objective_source"),
            "exploits": final.exploits if final else 0, "params": final.params if final else params,
            "overrides": [*(extra if arm in SEARCH_ARMS else ()), *config],
        })  # fmt: skip
    return rows


def sign_test(wins: int, losses: int) -> float:
    """Two-sided binomial p of ``wins`` vs ``losses`` (ties dropped) under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, j) for j in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def summary(rows: list[dict]) -> str:
    out: list[str] = []
    for task in sorted({r["task"] for r in rows}):
        spec = TASKS[task]
        trows = [r for r in rows if r["task"] == task]
        named = {r["arm"] for r in trows}  # rows merged from several runs may carry other names (e.g. oracle)
        arms = [a for a in ARMS if a in named] + sorted(named - set(ARMS))
        rounds = sorted({r["round"] for r in trows})
        complete = [
            k for k in rounds if all(any(r["arm"] == a and r["round"] == k for r in trows) for a in arms)
        ]
        best: dict[str, dict[int, float]] = {a: {} for a in arms}
        mean: dict[str, dict[int, float]] = {a: {} for a in arms}
        for a in arms:
            for k in complete:
                vals = [r["objective"] for r in trows if r["arm"] == a and r["round"] == k]
                vals = [v for v in vals if math.isfinite(v)] or [math.nan]
                best[a][k], mean[a][k] = max(vals), sum(vals) / len(vals)
        out.append(
            f"\n## {task} ({spec['task']}, objective: {spec['what']}, target {spec['target']:g}); "
            f"{len(complete)} complete round(s): {complete}"
        )
        out.append("| round | " + " | ".join(f"{a} best / mean" for a in arms) + " |")
        out.append("|---|" + "---|" * len(arms))
        for k in complete:
            out.append(f"| {k} | " + " | ".join(f"{best[a][k]:.3g} / {mean[a][k]:.3g}" for a in arms) + " |")
        out.append(
            "\n| arm | mean of best-of-N | mean of means | runs >= target | best-of-N vs fixed (W-L, p) | "
            "vs random (W-L, p) | mean vs fixed (W-L) | mean vs random (W-L) | rounds above both in both |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for a in arms:
            runs = [r for r in trows if r["arm"] == a and r["round"] in complete]
            above = sum(1 for r in runs if math.isfinite(r["objective"]) and r["objective"] >= spec["target"])
            cells = [a, f"{_avg(best[a]):.3g}", f"{_avg(mean[a]):.3g}", f"{above} of {len(runs)}"]
            for base, table in (("fixed", best), ("random", best), ("fixed", mean), ("random", mean)):
                if base not in arms or base == a:
                    cells.append("—")
                    continue
                w = sum(1 for k in complete if table[a][k] > table[base][k])
                lo = sum(1 for k in complete if table[a][k] < table[base][k])
                cells.append(f"{w}-{lo}" + (f", p={sign_test(w, lo):.2f}" if table is best else ""))
            # issue 14's goal, per round: best-of-N and mean both strictly above fixed's and random's
            if a in ("fixed", "random") or not {"fixed", "random"} <= set(arms):
                cells.append("—")
            else:
                goal = sum(
                    1
                    for k in complete
                    if all(t[a][k] > t[b][k] for t in (best, mean) for b in ("fixed", "random"))
                )
                cells.append(f"{goal} of {len(complete)}")
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _avg(d: dict[int, float]) -> float:
    vals = [v for v in d.values() if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(TASKS), default="acrobot")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--epochs", type=int, default=0, help="per run (default: the task's, 150 or 50)")
    ap.add_argument("--num-envs", type=int, default=512)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--first-round", type=int, default=0)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a pbt.* override for the pbt_search arms (perturb, pb2, resample); repeatable",
    )  # fmt: skip
    ap.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for every run of every arm (a variant of the task; e.g. the defaults with the "
        "known answer, train.params.config.gamma=0.95 on pendulum: an oracle); repeatable",
    )  # fmt: skip
    ap.add_argument("--out", default="", help="results and run folders (default: a temp dir); results append")
    ap.add_argument("--summary", default="", help="print the tables of DIR/results.json and exit")
    args = ap.parse_args(argv)
    if args.summary:
        print(summary(json.loads((Path(args.summary) / "results.json").read_text())))
        return 0
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad:
        ap.error(f"unknown arms {bad}; valid: {', '.join(ARMS)}")
    extra = tuple(args.set)
    bad = [o for o in extra if not o.startswith("pbt.") or "=" not in o or any(c.isspace() for c in o)]
    if bad:
        ap.error(f"--set takes pbt.KEY=VALUE overrides without spaces, got {bad}")
    config = tuple(args.config)
    bad = [
        o
        for o in config
        if "=" not in o or o.startswith(("pbt", "hydra", "+", "~")) or any(c.isspace() for c in o)
    ]
    if bad:
        ap.error(f"--config takes KEY=VALUE overrides of the task or train config without spaces, got {bad}")
    args.epochs = args.epochs or TASKS[args.task]["epochs"]
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="search_compare_"))
    base.mkdir(parents=True, exist_ok=True)
    results = base / "results.json"
    rows: list[dict] = json.loads(results.read_text()) if results.exists() else []
    print(
        f"{args.task}: {args.members} runs per arm x {args.epochs} epochs x {args.num_envs * 16} frames; "
        f"arms {arms}; pbt_search overrides {list(extra)}; config {list(config)}; out {base}",
        flush=True,
    )
    for k in range(args.first_round, args.first_round + args.rounds):
        seed0 = 1 + k * args.members
        for arm in arms:
            root = base / args.task / f"round{k}"
            root.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            new = run_arm(
                root, args.task, arm, args.members, args.epochs, args.num_envs, seed0, extra, config
            )
            wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
            for r in new:
                r.update(
                    round=k,
                    epochs=args.epochs,
                    num_envs=args.num_envs,
                    arm_wall_s=round(wall, 1),
                    load1=load1,
                )
            rows = [
                r for r in rows if not (r["task"] == args.task and r["round"] == k and r["arm"] == arm)
            ] + new
            _write(results, rows)
            objs = " ".join(f"{r['objective']:.3g}" for r in new)
            print(
                f"round {k} {arm:>7}: {objs}  ({wall:.0f} s, load {load1:.1f}, exits "
                f"{[r['exit'] for r in new]})",
                flush=True,
            )
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
