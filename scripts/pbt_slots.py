"""Time-sliced PBT on AcrobotHard: PBT-8 on 2 slots vs PBT-8 on 8 processes vs PBT-4 on 4 (issue 12; not CI).

    nice -n 10 .venv/bin/python scripts/pbt_slots.py [--epochs 150] [--rounds 2] [--out DIR]

Every member trains ``--epochs`` epochs of 512 envs x 16 steps (the same env steps per member in every arm),
with ``poptrain.experiments.acrobot_pbt``'s overrides, member i seeded ``seed0 + i``. Arms:

- ``8on8``: 8 member processes (``poptrain.train``) at once, one population;
- ``8on2``: the same 8 members in 2 slot processes (``poptrain.pbt.slots``, members dealt round-robin);
- ``4on4``: 4 member processes.

Per arm: each member's final objective (success rate over its last finished episodes), the population's best
and mean, wall time and the 1-minute load average at the end (the machine is shared). For ``8on2`` also the
switching overhead: slot wall time beyond its members' own training time (switches, waits for the other
slot at a generation, decisions), from ``<workspace>/slots/slot_<k>.json``. ``--rounds R`` repeats with seeds
shifted by 8 per round. Rows go to ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poptrain.experiments.acrobot_pbt import EPOCHS, member_overrides
from poptrain.pbt.slots import group_members
from poptrain.pbt.workspace import Workspace

ARMS = {"8on8": (8, 0), "8on2": (8, 2), "4on4": (4, 0)}  # name -> (members, slots; 0 = a process each)


def run_arm(root: Path, arm: str, epochs: int, seed0: int) -> dict:
    n, slots = ARMS[arm]
    ws = root / f"{arm}_ws"
    members = [
        [sys.executable, "-m", "poptrain.train", *member_overrides(num_policies=n, epochs=epochs),
         f"pbt.policy_idx={i}", f"seed={seed0 + i}", f"experiment={arm}_{i}", f"pbt.workspace={ws}",
         f"train_dir={root / 'runs'}"]
        for i in range(n)
    ]  # fmt: skip
    cmds = group_members(members, slots) if slots else members
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=(root / f"{arm}_{k}.log").open("w"), stderr=subprocess.STDOUT)
             for k, c in enumerate(cmds)]  # fmt: skip
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    w = Workspace(ws)
    finals = [w.latest(i) for i in range(n)]
    objectives = [f.objective if f else math.nan for f in finals]
    row = {
        "arm": arm, "seed0": seed0, "exit": codes, "wall_s": wall, "load1": os.getloadavg()[0],
        "objectives": objectives, "frames": [f.frames if f else 0 for f in finals],
        "best": max(objectives), "mean": statistics.fmean(objectives),
        "exploits": sum(f.exploits for f in finals if f),
    }  # fmt: skip
    if slots:
        status = [json.loads(p.read_text()) for p in sorted((ws / "slots").glob("slot_*.json"))]
        wall_s = sum(s["wall_s"] for s in status)
        row.update(
            slot_wall_s=wall_s,
            slot_train_s=sum(s["train_s"] for s in status),
            slot_switch_s=sum(s["switch_s"] for s in status),
            slot_wait_s=sum(s["wait_s"] for s in status),
            switches=sum(s["switches"] for s in status),
        )
        row["overhead"] = (wall_s - row["slot_train_s"]) / wall_s
        row["switch_share"] = row["slot_switch_s"] / wall_s
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    ap.add_argument("--out", default="", help="keep run folders here (default: a temp dir)")
    args = ap.parse_args(argv)
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        ap.error(f"unknown arms {unknown}; valid: {list(ARMS)}")
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pbt_slots_"))
    print(f"runs under {base}; every member {args.epochs} epochs x {512 * 16} frames", flush=True)
    rows = []
    for r in range(args.rounds):
        for arm in arms:
            root = base / f"round{r}"
            root.mkdir(parents=True, exist_ok=True)
            row = run_arm(root, arm, args.epochs, seed0=1 + 8 * r)
            rows.append(row)
            extra = ""
            if "overhead" in row:
                extra = (
                    f" | slot overhead {100 * row['overhead']:.2f} % (switch {100 * row['switch_share']:.2f} %,"
                    f" wait {row['slot_wait_s']:.1f} s, {row['switches']} switches)"
                )
            print(
                f"round {r} {arm}: best {row['best']:.3f} mean {row['mean']:.3f} wall {row['wall_s']:.0f} s "
                f"load {row['load1']:.1f} exit {row['exit']}{extra}",
                flush=True,
            )
            (base / "results.json").write_text(json.dumps(rows, indent=1))
    for arm in arms:
        mine = [x for x in rows if x["arm"] == arm]
        print(f"{arm}: best {[round(x['best'], 3) for x in mine]} mean {[round(x['mean'], 3) for x in mine]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
