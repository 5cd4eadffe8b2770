"""Launcher benchmark: dry-run generation+rendering speed, and slot utilisation per backend.

    .venv/bin/python benchmarks/launcher.py [--jobs 200] [--max_parallel 4] [--job_s 0.5]
        [--backends processes,slurm,ray] [--ray_address 127.0.0.1:6379]

1. Plans 10,000 experiments (a 100 x 100 ParamGrid, Hydra style) and renders them for each backend
   (processes, slurm, ngc, ray) without starting anything; prints seconds and the ratio to the 2 s budget.
2. Runs ``--jobs`` short jobs (``sh -c 'date; sleep S; date'``) on each of ``--backends`` and reports
   slot utilisation = sum of the jobs' own start-to-end times / (slots x time from the first job's start to
   the last job's end). Each job prints its own start and end clock, so scheduling gaps count as idle.
   Slots: processes ``--max_parallel``; ray ``--max_parallel`` too (each slot actor asks
   ``node CPUs / max_parallel`` CPUs of the head of scripts/ray-local.sh); slurm one per CPU of the local
   node (scripts/slurm-local.sh; a job asks 1 CPU, the least it can). Target: >= 95 %.
   Also per backend: submit latency (the ``submit`` call / jobs), the first job's start after submit
   (ray: starting the slot actors, which the launcher does before it dispatches the first job), and the
   end-to-end time from submit to the last job's end, which counts that start-up too, and the median / p90
   job transition (a job's end to the next job's start in the slot it freed: the k-th end is paired with
   the (slots + k)-th start, which holds while every slot is busy).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass

import poptrain
from poptrain.launcher.backends import Backend, JobState
from poptrain.launcher.backends.ngc import NgcBackend
from poptrain.launcher.backends.processes import ProcessesBackend
from poptrain.launcher.backends.ray import RayBackend
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
        RayBackend(),
    ):
        t0 = time.perf_counter()
        planned = list(rd.plan(train_dir, makedirs=False))
        rendered = backend.render(planned)
        results[backend.name] = time.perf_counter() - t0
        assert len(rendered) == 10_000 and len({r.name for r in rendered}) == 10_000
    return results


@dataclass
class SlotResult:
    utilisation: float
    """busy / (slots x wall)."""
    wall_s: float
    """First job's start to last job's end."""
    submit_s_per_job: float
    """The backend's submit() call divided by the jobs."""
    first_start_s: float
    """From calling submit() to the first job's own start clock."""
    end_to_end_s: float
    """From calling submit() to the last job's own end clock (start-up included)."""
    transition_ms: tuple[float, float]
    """Median and p90 of the gap between a job's end and the start of the job that took its slot."""


def bench_slots(backend: Backend, slots: int, train_dir: str, jobs: int, job_s: float) -> SlotResult:
    script = f"date +%s.%N; sleep {job_s}; date +%s.%N"
    rd = RunDescription(
        "slots", [Experiment("j", ["sh", "-c", script, "job"], [{"i": i} for i in range(jobs)])]
    )
    planned = list(rd.plan(train_dir))
    rendered = backend.render(planned)
    if isinstance(backend, RayBackend):
        backend.connect()  # connecting (once per launcher) is not part of the per-job submit cost
    submitted_at = time.time()
    t0 = time.perf_counter()
    backend.submit(rendered)
    submit_s = time.perf_counter() - t0
    statuses = backend.wait(timeout_s=jobs * job_s * 10 + 120)
    assert all(s.state is JobState.COMPLETED for s in statuses), [
        s for s in statuses if s.state is not JobState.COMPLETED
    ]
    spans = []
    for p in planned:
        with open(os.path.join(p.output_dir, "log.txt")) as f:
            clocks = [float(line) for line in f.read().split("\n") if re.fullmatch(r"\d+\.\d+", line)]
        spans.append((clocks[0], clocks[1]))
    busy = sum(end - start for start, end in spans)
    first = min(start for start, _ in spans)
    wall = max(end for _, end in spans) - first
    last = max(end for _, end in spans)
    starts, ends = sorted(s for s, _ in spans), sorted(e for _, e in spans)
    gaps = sorted((start - end) * 1000 for start, end in zip(starts[slots:], ends, strict=False)) or [0.0]
    transition = (gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.9)])
    return SlotResult(
        busy / (slots * wall), wall, submit_s / jobs, first - submitted_at, last - submitted_at, transition
    )


def make_backend(name: str, max_parallel: int, tmp: str, ray_address: str) -> tuple[Backend, int]:
    """The backend under test and its number of slots."""
    if name == "processes":
        return ProcessesBackend(max_parallel=max_parallel, pause_between=0), max_parallel
    if name == "slurm":
        node_cpus = os.cpu_count() or 1  # scripts/slurm-local.sh registers the node with its real CPU count
        return SlurmBackend(
            workdir=os.path.join(tmp, "sw"), gpus_per_job=0, cpus_per_gpu=1, poll_interval_s=0.2
        ), node_cpus
    if name == "ray":
        node_cpus = os.cpu_count() or 1  # scripts/ray-local.sh starts the head with every CPU
        # Workers import run_member from the poptrain this script runs (a head started elsewhere may not).
        src = os.path.dirname(os.path.dirname(os.path.abspath(poptrain.__file__)))
        return RayBackend(
            address=ray_address,
            cpus_per_job=node_cpus / max_parallel,
            runtime_env={"env_vars": {"PYTHONPATH": src}},
            poll_interval_s=0.2,
        ), max_parallel
    raise SystemExit(f"--backends: unknown backend {name!r}; valid: processes, slurm, ray")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--max_parallel", type=int, default=4)
    parser.add_argument("--job_s", type=float, default=0.5)
    parser.add_argument("--backends", default="processes,slurm,ray", help="comma-separated, in this order")
    parser.add_argument("--ray_address", default="127.0.0.1:6379", help="the head of scripts/ray-local.sh")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="poptrain-bench-launcher-") as tmp:
        for name, seconds in bench_render(os.path.join(tmp, "render")).items():
            print(
                f"render 10,000 experiments ({name:9s}): {seconds:.3f} s = {seconds / 2.0:.2f} x the 2 s budget"
            )
        for name in args.backends.split(","):
            backend, slots = make_backend(name, args.max_parallel, tmp, args.ray_address)
            r = bench_slots(backend, slots, os.path.join(tmp, f"slots_{name}"), args.jobs, args.job_s)
            ideal = args.jobs * args.job_s / slots
            print(
                f"{name:9s} slot utilisation {r.utilisation * 100:5.1f} % ({args.jobs} jobs of {args.job_s} s, "
                f"{slots} slots; wall {r.wall_s:.2f} s vs ideal {ideal:.2f} s); submit "
                f"{r.submit_s_per_job * 1000:.2f} ms/job; first job started {r.first_start_s:.2f} s after submit; "
                f"submit to last end {r.end_to_end_s:.2f} s; transition median {r.transition_ms[0]:.1f} ms, "
                f"p90 {r.transition_ms[1]:.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
