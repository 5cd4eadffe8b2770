"""PBT vs fixed defaults on AcrobotHard with the same env-step budget per run (issue 4's learning check; not CI).

    .venv/bin/python scripts/pbt_vs_fixed.py [--epochs 150] [--members 4] [--rounds 1] [--out DIR]

Arm "fixed": ``--members`` independent runs with the default hyperparameters (seeds 1..N), each a PBT member
of a population of 1 in its own workspace: the same observer measures the same objective (success rate over
the last max(``objective_window``, num_envs) = 512 finished episodes) and never exploits or mutates. Arm "pbt": one population of
N members (``poptrain.experiments.acrobot_pbt`` overrides, seeds 1..N; member 0 is the default config).
Every run trains ``--epochs`` epochs of 512 envs x 16 steps. Each arm's N processes run at the same time.
Prints each run's final objective, return, exploits and final entropy_coef, the best of each arm, each arm's
wall time and the 1-minute load average at its end (the machine is shared), and writes every row to
``<out>/results.json``. ``--rounds R`` repeats with seeds shifted by N per round; ``--first-round K`` starts at round K (fresh seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poptrain.experiments.acrobot_pbt import EPOCHS, member_overrides
from poptrain.pbt.workspace import Workspace

ENTROPY_KEY = "train.params.config.entropy_coef"


def run_arm(root: Path, arm: str, n: int, epochs: int, seed0: int) -> list[dict]:
    procs = []
    for i in range(n):
        seed = seed0 + i
        if arm == "pbt":
            ws, idx, pop = root / "pbt_ws", i, n
        else:
            ws, idx, pop = root / f"fixed_ws_{i}", 0, 1
        argv = [
            sys.executable,
            "-m",
            "poptrain.train",
            *member_overrides(num_policies=pop, epochs=epochs),
            f"pbt.policy_idx={idx}",
            f"seed={seed}",
            f"pbt.workspace={ws}",
            f"train_dir={root / 'runs'}",
            f"experiment={arm}_{i}",
        ]
        log = (root / f"{arm}_{i}.log").open("w")
        procs.append((i, seed, ws, idx, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))
    rows = []
    for i, seed, ws, idx, proc in procs:
        code = proc.wait()
        final = Workspace(ws).latest(idx)
        log_text = (root / f"{arm}_{i}.log").read_text()
        train = [ln for ln in log_text.splitlines() if ln.startswith("train: ")]
        ret = float(train[-1].split("mean_reward=")[1].split()[0]) if train else math.nan
        rows.append(
            {
                "arm": arm,
                "run": i,
                "seed": seed,
                "exit": code,
                "objective": final.objective if final else math.nan,
                "return": ret,
                "exploits": final.exploits if final else 0,
                "frames": final.frames if final else 0,
                "entropy_coef": final.params.get(ENTROPY_KEY, math.nan) if final else math.nan,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--first-round", type=int, default=0, help="start at this round (seeds 1 + round * members ...)"
    )
    ap.add_argument("--out", default="", help="keep run folders here (default: a temp dir)")
    args = ap.parse_args(argv)
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pbt_vs_fixed_"))
    print(f"runs under {base}; {args.members} runs per arm x {args.epochs} epochs x {512 * 16} frames")
    summary = []
    all_rows = []
    for r in range(args.first_round, args.first_round + args.rounds):
        seed0 = 1 + r * args.members
        for arm in ("fixed", "pbt"):
            root = base / f"round{r}"
            root.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            rows = run_arm(root, arm, args.members, args.epochs, seed0)
            wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
            print(f"\nround {r} arm {arm} ({wall:.0f} s wall, load average {load1:.2f} at its end)")
            for row in rows:
                row.update(round=r, arm_wall_s=round(wall, 1), load1=load1)
                print(
                    f"  run {row['run']} seed {row['seed']}: exit {row['exit']} objective {row['objective']:.3f} "
                    f"return {row['return']:.1f} frames {row['frames']} exploits {row['exploits']} "
                    f"entropy_coef {row['entropy_coef']:.4g}",
                    flush=True,
                )
            all_rows.extend(rows)
            best = max(rows, key=lambda x: (x["objective"], x["return"]))
            summary.append((r, arm, best))
    tmp = base / "results.json.tmp"
    tmp.write_text(json.dumps(all_rows, indent=1))
    os.replace(tmp, base / "results.json")
    print("\nbest final objective (success rate; return as tie-break) per arm and round:")
    for r, arm, best in summary:
        print(
            f"  round {r} {arm:>5}: objective {best['objective']:.3f} return {best['return']:.1f} "
            f"(run {best['run']}, seed {best['seed']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
