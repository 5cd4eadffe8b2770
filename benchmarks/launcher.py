"""Launcher benchmark: dry-run generation+rendering speed, and processes-backend slot utilisation.

    .venv/bin/python benchmarks/launcher.py [--jobs 200] [--max_parallel 4] [--job_s 0.5]

1. Plans 10,000 experiments (a 100 x 100 ParamGrid, Hydra style) and renders them for each backend
   (processes, slurm, ngc) without starting anything; prints seconds and the ratio to the 2 s budget.
2. Runs ``--jobs`` short jobs (``sh -c 'date; sleep S; date'``) on the processes backend with
   ``--max_parallel`` slots and reports slot utilisation = sum of the jobs' own start-to-end times /
   (max_parallel x time from the first job's start to the last job's end). Each job prints its own start and
   end clock, so the launcher's scheduling gaps count as idle. Target: >= 95 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from poptrain.launcher.backends import JobState
from poptrain.launcher.backends.ngc import NgcBackend
from poptrain.launcher.backends.processes import ProcessesBackend
from poptrain.launcher.backends.slurm import SlurmBackend
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription


def bench_render(train_dir: str) -> dict[str, float]:
    rd = RunDescription(
        "bench",
        [Experiment("cp", [sys.executable, "-m", "poptrain.train", "task=Cartpole"],
                    ParamGrid([("train.params.config.learning_rate", [i * 1e-5 for i in range(1, 101)]),
                               ("seed", list(range(100)))]))],
        experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    )  # fmt: skip
    results = {}
    for backend in (
        ProcessesBackend(),
        SlurmBackend(workdir=os.path.join(train_dir, "sw"), gpus_per_job=0),
        NgcBackend(workspace="ws"),
    ):
        t0 = time.perf_counter()
        planned = list(rd.plan(train_dir, makedirs=False))
        rendered = backend.render(planned)
        results[backend.name] = time.perf_counter() - t0
        assert len(rendered) == 10_000 and len({r.name for r in rendered}) == 10_000
    return results


def bench_slots(train_dir: str, jobs: int, max_parallel: int, job_s: float) -> tuple[float, float]:
    script = f"date +%s.%N; sleep {job_s}; date +%s.%N"
    rd = RunDescription(
        "slots", [Experiment("j", ["sh", "-c", script, "job"], [{"i": i} for i in range(jobs)])]
    )
    planned = list(rd.plan(train_dir))
    backend = ProcessesBackend(max_parallel=max_parallel, pause_between=0)
    backend.submit(backend.render(planned))
    statuses = backend.wait(timeout_s=jobs * job_s * 5 + 60)
    assert all(s.state is JobState.COMPLETED for s in statuses), [
        s for s in statuses if s.state is not JobState.COMPLETED
    ]
    spans = []
    for p in planned:
        with open(os.path.join(p.output_dir, "log.txt")) as f:
            clocks = [float(line) for line in f.read().split("\n")[1:] if line.strip()]
        spans.append((clocks[0], clocks[1]))
    busy = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return busy / (max_parallel * wall), wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--max_parallel", type=int, default=4)
    parser.add_argument("--job_s", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="poptrain-bench-launcher-") as tmp:
        for name, seconds in bench_render(os.path.join(tmp, "render")).items():
            print(
                f"render 10,000 experiments ({name:9s}): {seconds:.3f} s = {seconds / 2.0:.2f} x the 2 s budget"
            )
        util, wall = bench_slots(os.path.join(tmp, "slots"), args.jobs, args.max_parallel, args.job_s)
        ideal = args.jobs * args.job_s / args.max_parallel
        print(
            f"slot utilisation: {util * 100:.1f} % ({args.jobs} jobs of {args.job_s} s, max_parallel "
            f"{args.max_parallel}; wall {wall:.2f} s vs ideal {ideal:.2f} s = {ideal / wall:.3f})"
        )


if __name__ == "__main__":
    main()
