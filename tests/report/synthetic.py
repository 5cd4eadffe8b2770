"""A synthetic PBT population written through the real ``Workspace`` API (for tests and docs figures).

    python tests/report/synthetic.py OUT_DIR [--members 4] [--iterations 6] [--seed 0]

Every iteration each member writes a checkpoint + metadata; from iteration 2 on, the worst quarter
exploits a random member of the best quarter (mutating learning_rate and entropy_coef, appending an
``exploit`` lineage line), and now and then a member mutates without exploiting (a ``mutate`` line).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from poptrain.pbt.workspace import MemberMeta, Workspace

LR = "train.params.config.learning_rate"
ENT = "train.params.config.entropy_coef"
FRAMES_PER_ITER = 4096


def simulate(
    root: str | Path,
    members: int = 4,
    iterations: int = 6,
    seed: int = 0,
    frames_per_iter: int = FRAMES_PER_ITER,
    config: dict[str, Any] | None = None,
    finished: bool = True,
    now: float | None = None,
) -> Workspace:
    """Write the population; returns the Workspace. Times are spaced 60 s apart ending at ``now``."""
    rng = random.Random(seed)
    ws = Workspace(root)
    ws.ensure_population(members)
    now = time.time() if now is None else now
    t0 = now - 60.0 * iterations
    params = {
        m: {LR: 3e-4 * rng.uniform(0.5, 2.0), ENT: round(rng.uniform(0.0, 0.01), 5)} for m in range(members)
    }
    skill = {m: rng.uniform(0.5, 1.5) for m in range(members)}
    score = {m: 0.0 for m in range(members)}
    parent: dict[int, dict[str, int] | None] = {m: None for m in range(members)}
    exploits = {m: 0 for m in range(members)}
    state = {"model": {"w": torch.zeros(2)}, "epoch": 0, "frame": 0}
    for it in range(1, iterations + 1):
        frames = it * frames_per_iter
        for m in range(members):
            lr_bonus = -abs(math.log(params[m][LR] / 4e-4))
            score[m] += 40.0 * skill[m] + 15.0 * lr_bonus + rng.gauss(0, 3)
            meta = MemberMeta(
                member=m,
                iteration=it,
                frames=frames,
                epoch=it * 8,
                objective=score[m],
                params=dict(params[m]),
                checkpoint=f"{it:06d}.pth",
                experiment=f"pop_p{m}",
                experiment_dir=f"/runs/pop_p{m}",
                time=t0 + 60.0 * it,
                num_policies=members,
                parent=parent[m],
                exploits=exploits[m],
                overrides=[
                    "task=Cartpole",
                    "pbt=pbt_default",
                    f"pbt.policy_idx={m}",
                    f"{LR}={params[m][LR]!r}",
                ],
                finished=finished and it == iterations,
            )
            ws.write_checkpoint(meta, state)
        if it == iterations:
            break
        ranked = sorted(range(members), key=lambda m: score[m])
        quarter = max(1, members // 4)
        for loser in ranked[:quarter]:
            source = rng.choice(ranked[-quarter:])
            if source == loser:
                continue
            new = {LR: params[source][LR] * rng.choice([0.8, 1.25]), ENT: params[source][ENT]}
            changed = [k for k in new if new[k] != params[loser][k]]
            ws.append_lineage(
                "exploit",
                loser,
                source=source,
                source_iteration=it,
                iteration=it,
                frames=frames,
                old_params=dict(params[loser]),
                new_params=dict(new),
                changed=changed,
                mode="hot_swap",
                time=t0 + 60.0 * it + 1,
            )
            params[loser], score[loser], skill[loser] = new, score[source], skill[source]
            parent[loser] = {"member": source, "iteration": it}
            exploits[loser] += 1
        for m in ranked[quarter:-quarter]:
            if rng.random() < 0.25:
                new = {**params[m], ENT: round(params[m][ENT] * 1.2 + 0.001, 5)}
                ws.append_lineage(
                    "mutate",
                    m,
                    iteration=it,
                    frames=frames,
                    old_params=dict(params[m]),
                    new_params=dict(new),
                    changed=[ENT],
                    mode="hot_swap",
                    time=t0 + 60.0 * it + 2,
                )
                params[m] = new
    best = max(range(members), key=lambda m: score[m])
    meta = ws.latest(best)
    assert meta is not None
    if config is not None:
        ws.export_best(meta, state, config)
    return ws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    simulate(
        args.out,
        args.members,
        args.iterations,
        args.seed,
        config={"task": {"name": "Cartpole"}, "train": {"params": {"config": {}}}},
    )
    print(f"workspace: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
