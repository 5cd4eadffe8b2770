"""Run the experiments as local processes, at most ``--max_parallel`` at a time.

Time-sliced PBT (``--slots K``): the N members of each population run in K slot processes, each hosting
N/K members in turn (``poptrain.pbt.slots``); every slot runs at once, so ``--max_parallel`` must be >= K.
Without ``--slots`` every member is its own process, as before (``--max_parallel >= N`` runs them all at once).

Each child starts in its own session (its own process group) with stdout+stderr appended to
``<train_dir>/<run_name>/<base_name>[_<suffix>]/<experiment_name>/log.txt``; every attempt starts with a
``[launcher] attempt N/M ...`` line, so restarts are counted in the log. ``cancel`` (Ctrl-C / SIGTERM in
the CLI) sends SIGTERM to every child's process group, then SIGKILL after ``kill_grace_s``.

GPU pinning (``--experiments_per_gpu K``, K >= 1): a child starts on the least-loaded of ``--num_gpus``
GPUs that runs fewer than K experiments, via ``CUDA_VISIBLE_DEVICES``. GPU ``i`` means the i-th entry of an
inherited ``CUDA_VISIBLE_DEVICES`` (so ``CUDA_VISIBLE_DEVICES=2,3 ... --num_gpus 2`` uses 2 and 3), or
``i`` itself when none is set. K = -1 (default) pins nothing and the child inherits the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from poptrain.errors import ConfigError
from poptrain.launcher.backends import (
    LOG_NAME,
    Backend,
    Job,
    JobState,
    JobStatus,
    RenderedJob,
    last_log_line,
    parse_bool,
    register_backend,
)
from poptrain.launcher.run_description import PlannedExperiment

log = logging.getLogger(__name__)


# ---- GPU pinning (pure) -----------------------------------------------------------------------------
def visible_gpu_ids(num_gpus: int, inherited: str | None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value for each of our ``num_gpus`` GPU indices."""
    if inherited is None:
        return [str(i) for i in range(num_gpus)]
    ids = [s.strip() for s in inherited.split(",") if s.strip()]
    if num_gpus > len(ids):
        raise ConfigError(
            f"--num_gpus {num_gpus} but the inherited CUDA_VISIBLE_DEVICES={inherited!r} makes only "
            f"{len(ids)} GPU(s) visible; valid: --num_gpus <= {len(ids)} (or unset CUDA_VISIBLE_DEVICES)"
        )
    return ids[:num_gpus]


def pick_gpu(usage: Sequence[int], experiments_per_gpu: int) -> int | None:
    """The least-loaded GPU index with a free place (lowest index on ties), or None when all are full."""
    best: int | None = None
    for i, used in enumerate(usage):
        if used < experiments_per_gpu and (best is None or used < usage[best]):
            best = i
    return best


@dataclass(eq=False)
class _Child(Job):
    log_path: str
    popen: subprocess.Popen[bytes] | None = None
    gpu: int | None = None
    started_at: float = 0.0
    runtime_before_s: float = 0.0
    cancel_requested: bool = False
    pidfd: int | None = None


@register_backend
class ProcessesBackend(Backend):
    """Local processes with a slot limit, GPU pinning, per-experiment logs and crash restarts."""

    name = "processes"
    attached = True

    def __init__(
        self,
        max_parallel: int = 4,
        num_gpus: int = 1,
        experiments_per_gpu: int = -1,
        max_restarts: int = 0,
        pause_between: float = 0.0,
        inherited_cuda_visible_devices: str | None = None,
        poll_interval_s: float = 0.25,
        kill_grace_s: float = 5.0,
        base_env: Mapping[str, str] | None = None,
        launcher_python: bool = True,
        slots: int = 0,
    ):
        problems = []
        if slots < 0:
            problems.append(f"--slots {slots}: valid: 0 (one process per member) or >= 1")
        if max_parallel < 1:
            problems.append(f"--max_parallel {max_parallel}: valid: an integer >= 1")
        if num_gpus < 0:
            problems.append(f"--num_gpus {num_gpus}: valid: an integer >= 0")
        if experiments_per_gpu == 0 or experiments_per_gpu < -1:
            problems.append(f"--experiments_per_gpu {experiments_per_gpu}: valid: -1 (don't pin) or >= 1")
        if experiments_per_gpu >= 1 and num_gpus < 1:
            problems.append(
                f"--experiments_per_gpu {experiments_per_gpu} needs --num_gpus >= 1, got {num_gpus}"
            )
        if max_restarts < 0:
            problems.append(f"--max_restarts {max_restarts}: valid: an integer >= 0")
        if pause_between < 0:
            problems.append(f"--pause_between {pause_between}: valid: seconds >= 0")
        if problems:
            raise ConfigError("; ".join(problems))
        self.max_parallel = max_parallel
        self.launcher_python = launcher_python
        self.slots = slots
        self.num_gpus = num_gpus
        self.experiments_per_gpu = experiments_per_gpu
        self.max_restarts = max_restarts
        self.pause_between = pause_between
        self.poll_interval_s = poll_interval_s
        self.kill_grace_s = kill_grace_s
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.gpu_ids = (
            visible_gpu_ids(num_gpus, inherited_cuda_visible_devices) if experiments_per_gpu >= 1 else []
        )
        self._children: list[_Child] = []
        self._queue: deque[_Child] = deque()
        self._gpu_usage = [0] * len(self.gpu_ids)
        self._last_launch = -float("inf")

    # ---- CLI ----
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("processes backend")
        group.add_argument("--max_parallel", type=int, default=4, help="experiments running at once (>= 1)")
        group.add_argument("--num_gpus", type=int, default=1, help="GPUs to spread experiments over")
        group.add_argument(
            "--experiments_per_gpu",
            type=int,
            default=-1,
            help="experiments per GPU, pinned with CUDA_VISIBLE_DEVICES; -1 = don't pin (default)",
        )
        group.add_argument(
            "--max_restarts", type=int, default=0, help="relaunch a crashed experiment up to K times"
        )
        group.add_argument(
            "--launcher_python",
            nargs="?",
            const=True,
            default=True,
            type=parse_bool,
            metavar="BOOL",
            help="a command starting with python/python3 runs with the launcher's interpreter "
            "(default True; False = the first python on PATH)",
        )
        group.add_argument(
            "--slots",
            type=int,
            default=0,
            help="time-sliced PBT: run each population's members in K processes (0 = one per member)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProcessesBackend:
        return cls(
            max_parallel=args.max_parallel,
            num_gpus=args.num_gpus,
            experiments_per_gpu=args.experiments_per_gpu,
            max_restarts=args.max_restarts,
            pause_between=args.pause_between,
            launcher_python=args.launcher_python,
            inherited_cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            slots=getattr(args, "slots", 0),
        )

    # ---- render ----
    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        if self.slots:
            from poptrain.pbt.slots import plan_slots

            planned = plan_slots(planned, self.slots)
            if len(planned) > self.max_parallel:
                raise ConfigError(
                    f"--slots {self.slots} makes {len(planned)} slot processes but --max_parallel is "
                    f"{self.max_parallel}: slots wait for each other every PBT interval, so all must run at once; "
                    f"valid: --max_parallel >= {len(planned)}"
                )
        rendered = []
        for p in planned:
            env_prefix = [f"{k}={v}" for k, v in (p.env_vars or {}).items()]
            log_path = os.path.join(p.output_dir, LOG_NAME)
            argv = list(p.argv)
            # IsaacGymEnvs' modules say "python -m ...": on PATH that may be another Python than the one
            # poptrain (and the user's packages) is installed in; the launcher's own interpreter is certain
            if self.launcher_python and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            text = shlex.join(env_prefix + argv) + f"  >> {shlex.quote(log_path)} 2>&1"
            rendered.append(RenderedJob(planned=p, text=text, argv=argv, path=log_path))
        return rendered

    # ---- submit / observe ----
    def submit(self, rendered: Sequence[RenderedJob]) -> None:
        for r in rendered:
            child = _Child(backend=self, rendered=r, status=JobStatus(name=r.name), log_path=r.path or "")
            self._children.append(child)
            self._queue.append(child)
        self._launch_ready()

    def _free_gpu(self) -> int | None:
        if self.experiments_per_gpu < 1:
            return None
        return pick_gpu(self._gpu_usage, self.experiments_per_gpu)

    def _launch_ready(self) -> None:
        running = sum(1 for c in self._children if c.popen is not None)
        while self._queue and running < self.max_parallel:
            if time.monotonic() - self._last_launch < self.pause_between:
                return
            gpu = self._free_gpu()
            if self.experiments_per_gpu >= 1 and gpu is None:
                return
            child = self._queue.popleft()
            self._start(child, gpu)
            running += 1

    def _start(self, child: _Child, gpu: int | None) -> None:
        planned = child.rendered.planned
        env = dict(self.base_env)
        env.update(planned.env_vars or {})
        attempt = child.status.restarts + 1
        env["POPTRAIN_LAUNCH_ATTEMPT"] = str(attempt)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu_ids[gpu]
            self._gpu_usage[gpu] += 1
        os.makedirs(os.path.dirname(child.log_path), exist_ok=True)
        with open(child.log_path, "ab") as logf:
            pin = f" CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}" if gpu is not None else ""
            header = f"[launcher] attempt {attempt}/{self.max_restarts + 1}{pin}: {shlex.join(child.rendered.argv)}\n"
            logf.write(header.encode())
            logf.flush()
            try:
                child.popen = subprocess.Popen(
                    child.rendered.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                logf.write(f"[launcher] could not start: {exc}\n".encode())
                child.popen = None
                if gpu is not None:
                    self._gpu_usage[gpu] -= 1
                child.status.state = JobState.FAILED
                child.status.reason = f"could not start {child.rendered.argv[0]!r}: {exc.strerror}"
                return
        child.gpu = gpu
        child.pidfd = _pidfd_open(child.popen.pid)
        child.started_at = time.monotonic()
        child.status.state = JobState.RUNNING
        child.status.job_id = str(child.popen.pid)
        self._last_launch = child.started_at
        log.debug("started %s pid %d", child.status.name, child.popen.pid)

    def _reap(self, child: _Child, returncode: int) -> None:
        assert child.popen is not None
        _kill_group(child.popen.pid, signal.SIGKILL)  # leftovers of a finished experiment are orphans
        child.popen = None
        if child.pidfd is not None:
            os.close(child.pidfd)
            child.pidfd = None
        if child.gpu is not None:
            self._gpu_usage[child.gpu] -= 1
            child.gpu = None
        child.runtime_before_s += time.monotonic() - child.started_at
        child.status.runtime_s = child.runtime_before_s
        child.status.exit_code = returncode
        if child.cancel_requested:
            child.status.state = JobState.CANCELLED
            child.status.reason = "cancelled"
        elif returncode == 0:
            child.status.state = JobState.COMPLETED
        elif child.status.restarts < self.max_restarts:
            child.status.restarts += 1
            with open(child.log_path, "ab") as logf:
                logf.write(
                    f"[launcher] exit code {returncode}; restart {child.status.restarts}/{self.max_restarts}\n".encode()
                )
            child.status.state = JobState.PENDING
            child.status.reason = f"restarting after exit code {returncode}"
            self._queue.appendleft(child)
        else:
            child.status.state = JobState.FAILED
            child.status.reason = f"exit code {returncode}" + (
                f" after {child.status.restarts} restart(s)" if child.status.restarts else ""
            )

    def poll(self) -> list[JobStatus]:
        now = time.monotonic()
        for child in self._children:
            if child.popen is not None:
                returncode = child.popen.poll()
                if returncode is not None:
                    self._reap(child, returncode)
                else:
                    child.status.runtime_s = child.runtime_before_s + now - child.started_at
        self._launch_ready()
        for child in self._children:
            if child.popen is not None or child.status.state.terminal and not child.status.last_line:
                child.status.last_line = last_log_line(child.log_path)
        return [c.snapshot() for c in self._children]

    def jobs(self) -> list[Job]:
        return list(self._children)

    def pause(self, seconds: float) -> None:
        """Sleep until a child exits or ``seconds`` pass (pidfds), so a freed slot is refilled at once."""
        if self._queue and self.pause_between > 0:
            seconds = min(seconds, max(0.0, self._last_launch + self.pause_between - time.monotonic()))
        fds = [c.pidfd for c in self._children if c.pidfd is not None]
        if fds:
            select.select(fds, [], [], seconds)
        else:
            time.sleep(seconds)

    def cancel(self) -> None:
        self.cancel_jobs(self._children)

    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        chosen = {id(j) for j in jobs}
        for child in [c for c in self._queue if id(c) in chosen]:
            self._queue.remove(child)
            child.status.state = JobState.CANCELLED
            child.status.reason = "cancelled before start"
        running = [c for c in self._children if c.popen is not None and id(c) in chosen]
        for child in running:
            child.cancel_requested = True
            assert child.popen is not None
            _kill_group(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace_s
        for child in running:
            assert child.popen is not None
            try:
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s ignored SIGTERM for %.0f s; killing its process group",
                    child.status.name,
                    self.kill_grace_s,
                )
                _kill_group(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
            self._reap(child, child.popen.returncode)


def _pidfd_open(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (None where pidfds are unsupported)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
