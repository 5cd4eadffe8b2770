"""The README's main job: PBT finding better hyperparameters than the defaults, on AcrobotHard (CPU, ~3 min).

    python -m poptrain.demo [--train_dir DIR]

Runs ``poptrain.experiments.acrobot_search``: a population of 4 with issue 14's search (Latin hypercube start
near the defaults, member 0 at them; no decision before the success rates carry signal; perturbation;
noise-aware exploits) and, at the
same time, one run of the default configuration with member 0's seed and the same env-step budget. Ends with
the population's leaderboard, the report's path, and one line comparing the population's best success rate
with the default run's, each with its window's standard error.

Equivalent to ``poptrain-launch --run poptrain.experiments.acrobot_search --backend processes --max_parallel 5``,
then ``poptrain status`` and ``poptrain report`` on ``<train_dir>/acrobot_search/population``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from poptrain.pbt import ranking
from poptrain.pbt.workspace import MemberMeta


def _figure(meta: MemberMeta | None) -> str:
    if meta is None or not math.isfinite(meta.objective):
        return "no result"
    se = (meta.extra or {}).get("objective_se")
    n = (meta.extra or {}).get("objective_n")
    err = f" ±{se:.2g}" if isinstance(se, (int, float)) and not isinstance(se, bool) else ""
    return f"{meta.objective:.3f}{err} (window of {n} episodes)" if n else f"{meta.objective:.3f}{err}"


def comparison_line(population: dict[int, MemberMeta], default: MemberMeta | None) -> str:
    """One line: the population's best final objective vs the default configuration's measured one."""
    # pbt.ranking's order; every member has finished here, and a finished member is never stale
    best = ranking.best(population.values())
    if best is None:
        return "population: no member has a finite objective; nothing to compare"
    verdict = ""
    if default is not None and math.isfinite(default.objective):
        diff = best.objective - default.objective
        verdict = f": {'+' if diff >= 0 else ''}{diff:.3f}"
    return (
        f"population best (member {best.member}) success {_figure(best)} vs default configuration (same seed, "
        f"same {best.frames:,} env steps) {_figure(default)}{verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poptrain.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--train_dir", default="train_dir", help="output root (default: ./train_dir)")
    args = parser.parse_args(argv)

    from poptrain.cli import main as poptrain_main
    from poptrain.launcher.run import main as launch
    from poptrain.pbt.workspace import Workspace

    code = launch([
        "--run", "poptrain.experiments.acrobot_search", "--backend", "processes", "--train_dir", args.train_dir,
        "--max_parallel", "5", "--pause_between", "0",
    ])  # fmt: skip
    root = Path(args.train_dir) / "acrobot_search"
    run_dir = root / "population"
    print(f"\nleaderboard of {run_dir}", flush=True)
    status = poptrain_main(["status", str(run_dir)])
    poptrain_main(["report", str(run_dir)])  # prints "report: <path>"
    population = Workspace(run_dir / "pbt_workspace").read_population(include_stale=True)
    default = Workspace(root / "default" / "pbt_workspace").latest(0)
    print(comparison_line(population, default), flush=True)
    return code or status


if __name__ == "__main__":
    sys.exit(main())
