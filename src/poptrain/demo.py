"""The README's main job: a PBT population of 4 on Cartpole (processes backend, CPU), then its leaderboard.

    python -m poptrain.demo [--train_dir DIR]

Equivalent to ``poptrain-launch --run poptrain.experiments.cartpole_pbt --backend processes --max_parallel 4``
followed by ``poptrain status <train_dir>/cartpole_pbt/cartpole``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poptrain.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--train_dir", default="train_dir", help="output root (default: ./train_dir)")
    args = parser.parse_args(argv)

    from poptrain.cli import main as poptrain_main
    from poptrain.experiments import cartpole_pbt
    from poptrain.launcher.run import main as launch

    code = launch([
        "--run", "poptrain.experiments.cartpole_pbt", "--backend", "processes", "--train_dir", args.train_dir,
        "--max_parallel", str(cartpole_pbt.NUM_POLICIES), "--pause_between", "0",
    ])
    run_dir = Path(args.train_dir) / "cartpole_pbt" / "cartpole"
    print(f"\nleaderboard of {run_dir} (report: poptrain report {run_dir})", flush=True)
    status = poptrain_main(["status", str(run_dir)])
    return code or status


if __name__ == "__main__":
    sys.exit(main())
