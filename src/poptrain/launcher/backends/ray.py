"""Run the experiments on a Ray cluster (``--backend ray``; needs ``pip install 'poptrain[ray]'``).

The launcher starts one long-lived Ray actor per slot (:class:`SlotActor`; as many slots as experiments, at
most what the cluster's nodes hold), each asking ``--ray_cpus_per_job`` CPUs and ``--ray_gpus_per_job`` GPUs
for its whole life: Ray picks the node and the GPUs. Once the slots are up, the launcher hands each idle
slot the next queued experiment, and, while experiments wait, one more to hold behind it (taken back for a
slot that goes idle once none wait); the slot (:func:`run_member`, on the node) starts the experiment's argv
exactly as given, as a child in its own session, with

- the node's environment (the Ray worker's, plus ``env_vars`` of ``--ray_runtime_env``), the experiment's
  ``env_vars``, ``POPTRAIN_LAUNCH_ATTEMPT=<n>`` and ``CUDA_VISIBLE_DEVICES`` set to the GPUs Ray assigned;
- the launcher's working directory as its cwd, stdout+stderr appended to ``<output_dir>/log.txt``;
- ``<output_dir>/ray_attempt.json`` (attempt, node, pids) written when it starts, which is how the launcher
  sees it running and how tests find the child's pid.

A slot with nothing left to run is stopped, so the cluster gets its resources back.

With ``--ray_wait`` the launcher is the Ray driver that owns the slots: it watches them (the live table), and
Ctrl-C / SIGTERM cancels every member: the launcher writes a cancel marker the slot polls twice a second, and
the slot stops its child's process group (SIGTERM, SIGKILL after ``kill_grace_s``) on whatever node it runs.
Ray ends a driver's actors when the driver exits, so without ``--ray_wait`` the launcher does not start the
slots itself: it submits *itself* (the same arguments plus ``--ray_wait --ray_address auto``) as a Ray job
through the head's job API and returns; that job's driver, on the head, owns the members (``ray job logs -f
ID``; ``ray job stop ID`` cancels them).

Faults: a child that exits non-zero is started again, up to ``--max_restarts`` times. A slot whose worker or
node died (Ray's ActorDiedError) is replaced by a new actor, which Ray places on a node that is alive, and
the member it was running counts a restart and starts again. A PBT member started again resumes from its own
newest checkpoint in the workspace. The child carries PR_SET_PDEATHSIG=SIGKILL: when the slot's worker dies,
the child dies too, so a member never runs twice.

Shared filesystem: every member reads and writes the workspace under train_dir, so train_dir must be the
same folder on every node. Before submitting, the launcher writes a random token to
``<experiment_dir>/.poptrain-ray-probe``; each slot checks it on its node before starting a member, and a
mismatch stops the whole population with one error naming the node and the path.

Only this module imports ray, and only when a cluster is needed (submit), so render / --ray_print_only work
without it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import (
    LOG_NAME,
    Backend,
    Job,
    JobState,
    JobStatus,
    RenderedJob,
    atomic_write,
    last_log_line,
    register_backend,
)
from poptrain.launcher.run_description import PlannedExperiment

log = logging.getLogger(__name__)

ATTEMPT_NAME = "ray_attempt.json"
"""Written by the slot into the experiment's output_dir when the member's child starts."""
PROBE_NAME = ".poptrain-ray-probe"
"""The shared-filesystem probe the launcher writes into every experiment_dir."""
CANCEL_NAME = ".poptrain-ray-cancel"
"""Written by the launcher into an experiment's output_dir on cancel, holding that launch's probe token: the slot
polls it twice a second and stops its child's process group at once. Ray's own cooperative cancel took 18 s at
load ~5 here and over 35 s under heavier load, after which a forced cancel left grandchildren behind."""


class _CancelRequested(Exception):
    """The launcher asked this member to stop (CANCEL_NAME holds this launch's token)."""


def _cancel_requested(path: str, token: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip() == token  # a marker of an earlier launch in the same folder is not ours
    except OSError:
        return False


_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def check_address(address: str) -> str:
    """``auto``, ``local`` or ``HOST:PORT`` (the GCS port of a running head); ConfigError otherwise."""
    if address in ("auto", "local"):
        return address
    match = _ADDRESS.fullmatch(address)
    if match is None or not 1 <= int(match.group("port")) <= 65535:
        raise ConfigError(
            f"--ray_address {address!r}: valid: auto (RAY_ADDRESS or the newest local head), local (start a "
            "private one-node cluster), or HOST:PORT of a running head's GCS, e.g. 10.0.0.5:6379"
        )
    return address


def read_runtime_env(path: str) -> dict[str, Any]:
    """The ``--ray_runtime_env`` file (JSON or YAML) as a mapping; ConfigError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"--ray_runtime_env {path!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--ray_runtime_env {path!r} is not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(
            f"--ray_runtime_env {path!r}: valid: a mapping such as {{env_vars: {{KEY: value}}, pip: [...]}}, "
            f"got a {type(data).__name__}"
        )
    env_vars = data.get("env_vars", {})
    if not isinstance(env_vars, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise ConfigError(f"--ray_runtime_env {path!r}: env_vars must map names to strings, got {env_vars!r}")
    return data


# ---- what runs on the node --------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked child: SIGKILL us when the thread that started us (the Ray worker) dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _death_signal_argv(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> list[str] | None:
    """``argv`` behind ``setpriv --pdeathsig KILL --`` (util-linux), or None where that cannot be used.

    Starting the child with ``preexec_fn`` makes subprocess fork the ~90 MB Ray worker instead of vfork-ing
    it: 7.6-9.2 ms per start inside a Ray worker on the 2-core dev machine, against 1.7 ms through setpriv,
    which sets the same death signal and execs the argv unchanged (same pid, same argv). None when setpriv
    is missing or argv[0] does not resolve (then the preexec path reports "could not start" as before,
    where setpriv would only exit 127).
    """
    setpriv = _SETPRIV
    if setpriv is None or not argv:
        return None
    program = argv[0]
    if os.sep in program:
        found = os.path.join(cwd or os.getcwd(), program)
        if not (os.path.isfile(found) and os.access(found, os.X_OK)):
            return None
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        return None
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


_SETPRIV = shutil.which("setpriv")


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pidfd_open(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (None where pidfds are unsupported)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _node_ip() -> str:
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:  # outside a Ray worker (tests of the pure parts): the host name is as good
        return socket.gethostname()


def _withdrawn() -> bool:
    """True when the launcher cancelled this actor call (ray.cancel) before it got here."""
    try:
        import ray

        return bool(ray.get_runtime_context().is_canceled())
    except Exception:  # outside a Ray actor (tests of the pure parts)
        return False


def probe_error(probe_path: str, token: str, node: str) -> str:
    """'' when ``probe_path`` holds ``token`` here, else the one error the launcher reports."""
    try:
        with open(probe_path, encoding="utf-8") as f:
            seen = f.read().strip()
    except OSError as exc:
        seen = f"<{exc.strerror}>"
    if seen == token:
        return ""
    return (
        f"train_dir is not shared with node {node}: {probe_path} there says {seen!r}, the launcher wrote "
        f"{token!r}. Every node must see train_dir (and the PBT workspace in it) at the same path: put it "
        "on a shared filesystem (NFS, Lustre, EFS, a Kubernetes ReadWriteMany volume); see docs/ray.md"
    )


def run_member(spec: dict[str, Any]) -> dict[str, Any]:
    """One attempt of one member, in a slot actor: check the shared filesystem, run the child, report how it ended.

    Returns ``{"kind": "exit", "code": N, "node": ip}``, ``{"kind": "not_shared", "error": ..., "node": ip}``,
    ``{"kind": "withdrawn", "node": ip}`` (the launcher took the call back before it started anything), or
    ``{"kind": "cancelled", "node": ip}`` once the launcher's cancel marker (CANCEL_NAME) appeared: then the
    child's process group got SIGTERM, and SIGKILL after ``spec["kill_grace_s"]``. Any other exception in
    this thread stops the child's group the same way and propagates.
    """
    entered = time.time()
    node = _node_ip()
    error = probe_error(spec["probe_path"], spec["probe_token"], node)
    if error:
        return {"kind": "not_shared", "error": error, "node": node}
    # a call queued behind another member may be withdrawn or cancelled just as it starts: start nothing
    if _withdrawn():
        return {"kind": "withdrawn", "node": node}
    cancel_path = os.path.join(os.path.dirname(spec["log_path"]), CANCEL_NAME)
    if _cancel_requested(cancel_path, spec["probe_token"]):
        return {"kind": "cancelled", "node": node}

    env = dict(os.environ)
    env.update(spec["env_vars"])
    env["POPTRAIN_LAUNCH_ATTEMPT"] = str(spec["attempt"])
    gpus = ""
    if spec["gpus_per_job"] > 0:
        import ray

        # Ray's assignment on this node; the child sees exactly these GPUs. Ray sets the worker's own
        # CUDA_VISIBLE_DEVICES too, except under RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: set it here.
        gpus = ",".join(str(g) for g in ray.get_gpu_ids())
        env["CUDA_VISIBLE_DEVICES"] = gpus
    log_path = spec["log_path"]
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as logf:
        pin = f" CUDA_VISIBLE_DEVICES={gpus}" if spec["gpus_per_job"] > 0 else ""
        logf.write(
            f"[launcher] attempt {spec['attempt']}/{spec['max_attempts']} on ray node {node}{pin}: "
            f"{spec['cmd']}\n".encode()
        )
        logf.flush()
        cwd = spec["cwd"] if os.path.isdir(spec["cwd"]) else None
        wrapped = _death_signal_argv(spec["argv"], env, cwd)
        try:
            # setpriv sets the death signal on exec; without it, a preexec_fn in the forked worker does
            child = subprocess.Popen(
                wrapped if wrapped is not None else spec["argv"],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=None if wrapped is not None else _die_with_parent,  # noqa: PLW1509 - no flag sets it
            )
        except OSError as exc:
            logf.write(f"[launcher] could not start: {exc}\n".encode())
            return {"kind": "exit", "code": 127, "node": node, "error": f"could not start: {exc.strerror}"}
    record = {
        "attempt": spec["attempt"],
        "node": node,
        "pid": child.pid,
        "worker_pid": os.getpid(),
        "started": time.time(),
        "entered": entered,  # when the slot's run began: started - entered is the slot's own startup cost
    }
    # The launcher's atomic_write (temp + os.replace), as the slurm backend's records: poptrain.checkpoints'
    # imports torch, which would add seconds and ~300 MB to every Ray worker that runs a member.
    atomic_write(os.path.join(os.path.dirname(log_path), ATTEMPT_NAME), json.dumps(record))
    pidfd = _pidfd_open(child.pid)
    try:
        while True:
            if _cancel_requested(cancel_path, spec["probe_token"]):
                raise _CancelRequested(cancel_path)
            # Short waits, not one blocking waitpid, so that the cancel marker is seen within 0.5 s. A pidfd
            # wakes us the moment the child exits; Popen.wait(timeout) polls with sleeps of up to 50 ms,
            # which cost 5-10 % of the slot time of 0.5 s jobs in benchmarks/launcher.py.
            if pidfd is not None:
                select.select([pidfd], [], [], 0.5)
            try:
                code = child.wait(timeout=0 if pidfd is not None else 0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException as exc:
        _kill_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=spec["kill_grace_s"])
        except subprocess.TimeoutExpired:
            pass
        _kill_group(child.pid, signal.SIGKILL)
        child.wait()
        with open(log_path, "ab") as logf:
            logf.write(f"[launcher] cancelled; process group {child.pid} stopped\n".encode())
        if isinstance(exc, _CancelRequested):
            # the slot actor lives on (the launcher retires it); the launcher expects this answer
            return {"kind": "cancelled", "node": node}
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
    _kill_group(child.pid, signal.SIGKILL)  # leftovers of a finished experiment are orphans
    return {"kind": "exit", "code": code, "node": node}


class SlotActor:
    """One slot of the cluster: a long-lived Ray actor (one worker process holding ``--ray_cpus_per_job`` CPUs
    and ``--ray_gpus_per_job`` GPUs) that runs the members the launcher hands it, one after another, with
    :func:`run_member`.

    The launcher starts every slot before it dispatches the first member. A Ray task per member let Ray start
    one worker per concurrent task on demand, two at a time on the 2-CPU dev head: the last of 4 came up
    0.3-5.2 s after the first (benchmarks/RESULTS-ray.md), and each member paid a worker lease on top of its
    round trip. An actor's method call goes straight to its process. Its GPUs (``ray.get_gpu_ids()``) are
    the ones Ray assigned the actor, for its whole life.
    """

    def ready(self) -> dict[str, Any]:
        """Answered once the actor's process is up (the launcher dispatches only to slots that answered)."""
        return {"node": _node_ip(), "pid": os.getpid()}

    def __init__(self) -> None:
        self._turn = threading.Lock()

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One attempt of one member (:func:`run_member`), after the member running here (if any) ended.

        The actor runs two calls at once (max_concurrency 2): the running member's and the one queued behind
        it, which waits here for its turn. Ray leaves a call queued behind a running one in a plain actor
        untouched by ray.cancel until that one ends (minutes to hours); waiting here, it sees the cancel flag
        (or the launcher's cancel marker) within 0.2 s and starts nothing.
        """
        cancel_path = os.path.join(os.path.dirname(spec["log_path"]), CANCEL_NAME)
        while not self._turn.acquire(timeout=0.2):
            if _withdrawn():
                return {"kind": "withdrawn", "node": _node_ip()}
            if _cancel_requested(cancel_path, spec["probe_token"]):
                return {"kind": "cancelled", "node": _node_ip()}
        try:
            return run_member(spec)
        finally:
            self._turn.release()


# ---- the launcher side ------------------------------------------------------------------------------
def _job_argv(args: argparse.Namespace) -> list[str]:
    """This launcher's command line as a Ray job's entrypoint runs it: on the head, watching (--ray_wait).

    --ray_runtime_env is not repeated: the job itself gets the runtime_env, and its tasks inherit it.
    """
    return [
        sys.executable, "-m", "poptrain.launcher.run", "--run", args.run, "--backend", "ray",
        "--train_dir", os.path.abspath(args.train_dir), "--pause_between", str(args.pause_between),
        "--experiment_suffix", args.experiment_suffix, "--ray_address", "auto",
        "--ray_cpus_per_job", str(args.ray_cpus_per_job), "--ray_gpus_per_job", str(args.ray_gpus_per_job),
        "--max_restarts", str(args.max_restarts), "--ray_wait",
    ]  # fmt: skip


@contextlib.contextmanager
def _signal_exceptions_unwrapped() -> Iterator[None]:
    """Re-raise what a Python signal handler raised inside a Ray call (the CLI's Ctrl-C / SIGTERM stop).

    Ray's Cython ``wait`` turns an exception raised by a signal handler while it blocks into
    ``SystemError: ... returned a result with an exception set``, with the handler's exception as context.
    """
    try:
        yield
    except SystemError as exc:
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            raise
        raise inner from None


@dataclass(eq=False)
class _Member(Job):
    spec: dict[str, Any]
    ref: Any = None
    """The ObjectRef of the running attempt (its slot's ``run`` call; None while queued or once terminal)."""
    slot: _Slot | None = None
    """The slot running it (None while queued or once terminal)."""
    attempt: int = 0
    """The current attempt, 1-based (0 before the first submission)."""
    started_at: float = 0.0
    """monotonic() when the launcher first saw this attempt's ray_attempt.json (0: not started yet)."""
    runtime_before_s: float = 0.0
    """Seconds run by earlier attempts."""
    cancel_requested: bool = False
    withdrawn: bool = False
    """Its call queued behind another member on a slot was withdrawn for an idle slot (see _step)."""


@dataclass
class _Slot:
    actor: Any
    """The SlotActor handle."""
    ready_ref: Any
    """The ObjectRef of its ``ready()`` call until that answered, then None."""
    member: _Member | None = None
    """The member it is running (None: idle)."""
    next: _Member | None = None
    """The member queued behind it in the actor (its call already sent), which starts the moment the running
    one ends, without waiting for the launcher."""


@register_backend
class RayBackend(Backend):
    """Experiments run by long-lived slot actors (:class:`SlotActor`) on an existing (or private) Ray cluster.

    ``address``: ``auto`` / ``HOST:PORT`` / ``local`` (--ray_address). ``gpus_per_job``, ``cpus_per_job``: what
    each slot actor asks Ray for (fractions allowed). ``runtime_env``: Ray runtime_env of every slot (and of the
    launcher's Ray job without --ray_wait); ``runtime_env_source``: its file, shown by render.
    ``max_restarts``: starts after a non-zero exit or a dead slot/node. ``pause_between``: seconds between two
    members handed to slots. ``print_only``: --ray_print_only. ``cwd``: the members' working directory (default: the
    launcher's). ``poll_interval_s``: longest wait between two polls. ``kill_grace_s``: SIGTERM -> SIGKILL
    delay on cancel. ``wait``: --ray_wait (False: submit ``launcher_argv`` as a Ray job instead).
    """

    name = "ray"
    attached = False
    owns_jobs = True
    slot_start_wait_s = 30.0
    """Seconds the first member waits, after the first slot is up, for the others (see _dispatch)."""

    def __init__(
        self,
        address: str = "auto",
        gpus_per_job: float = 0,
        cpus_per_job: float = 1,
        runtime_env: Mapping[str, Any] | None = None,
        runtime_env_source: str = "",
        max_restarts: int = 0,
        pause_between: float = 0.0,
        print_only: bool = False,
        cwd: str | None = None,
        poll_interval_s: float = 0.5,
        kill_grace_s: float = 5.0,
        wait: bool = True,
        launcher_argv: Sequence[str] = (),
    ):
        problems = []
        try:
            check_address(address)
        except ConfigError as exc:
            problems.append(str(exc))
        if gpus_per_job < 0:
            problems.append(
                f"--ray_gpus_per_job {gpus_per_job}: valid: a number >= 0 (fractions share a GPU)"
            )
        if cpus_per_job < 0 or (cpus_per_job == 0 and gpus_per_job <= 0):
            problems.append(
                f"--ray_cpus_per_job {cpus_per_job}: valid: a number > 0 (>= 0 when --ray_gpus_per_job > 0)"
            )
        if max_restarts < 0:
            problems.append(f"--max_restarts {max_restarts}: valid: an integer >= 0")
        if pause_between < 0:
            problems.append(f"--pause_between {pause_between}: valid: seconds >= 0")
        if not wait and address == "local":
            problems.append("--ray_address local ends with the launcher: add --ray_wait")
        if not wait and not print_only and not launcher_argv:
            problems.append("without --ray_wait the launcher needs its own argv to submit as a Ray job")
        if problems:
            raise ConfigError("; ".join(problems))
        self.attach = wait
        self.asked_to_wait = wait
        self.launcher_argv = list(launcher_argv)
        self._dashboard_url = ""
        self.address = address
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = cpus_per_job
        self.runtime_env = dict(runtime_env or {})
        self.runtime_env_source = runtime_env_source
        self.max_restarts = max_restarts
        self.pause_between = pause_between
        self._print_only = print_only
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.poll_interval_s = poll_interval_s
        self.kill_grace_s = kill_grace_s
        self._members: list[_Member] = []
        self._queue: deque[_Member] = deque()
        self._last_submit = -float("inf")
        self._next_scan = 0.0
        self._remote: Any = None
        """The SlotActor as a Ray actor class with this launch's resources (set by connect)."""
        self._ray: Any = None
        self._slots: list[_Slot] = []
        self._max_slots = 0
        """How many slots the cluster's nodes hold (set by submit)."""
        self._dispatching = False
        """False until the first dispatch: every slot up, or slot_start_wait_s after the first one."""
        self._first_ready_at = 0.0
        self._setup_error = ""
        """Why a slot actor could not start on its node (no slot is started again after one)."""

    @property
    def print_only(self) -> bool:
        return self._print_only

    def jobs(self) -> list[Job]:
        return list(self._members)

    # ---- CLI ----
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("ray backend")
        group.add_argument(
            "--ray_address",
            default="auto",
            help="auto (RAY_ADDRESS or the newest local head; default), HOST:PORT of a head, or local "
            "(start a private one-node cluster for this run)",
        )
        group.add_argument(
            "--ray_gpus_per_job", type=float, default=0, help="GPUs per experiment (default 0)"
        )
        group.add_argument(
            "--ray_cpus_per_job", type=float, default=1, help="CPUs per experiment (default 1)"
        )
        group.add_argument(
            "--ray_runtime_env",
            default=None,
            help="a JSON/YAML file with a Ray runtime_env for every task (env_vars, pip, ...)",
        )
        group.add_argument(
            "--ray_wait",
            action="store_true",
            help="watch the population from here (this launcher is the Ray driver; Ctrl-C cancels every "
            "member); without it the launcher submits itself as a Ray job and returns",
        )
        group.add_argument(
            "--ray_print_only", action="store_true", help="print each task's command; submit nothing"
        )
        group.add_argument(
            "--max_restarts",
            type=int,
            default=0,
            help="start a crashed experiment (or one on a dead node) again, up to K times",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RayBackend:
        runtime_env = read_runtime_env(args.ray_runtime_env) if args.ray_runtime_env else None
        return cls(
            address=args.ray_address,
            gpus_per_job=args.ray_gpus_per_job,
            cpus_per_job=args.ray_cpus_per_job,
            runtime_env=runtime_env,
            runtime_env_source=args.ray_runtime_env or "",
            max_restarts=args.max_restarts,
            pause_between=args.pause_between,
            print_only=args.ray_print_only,
            wait=args.ray_wait,
            launcher_argv=_job_argv(args),
        )

    # ---- render ----
    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        resources = f"num_cpus={self.cpus_per_job:g} num_gpus={self.gpus_per_job:g}"
        env_note = f" runtime_env={self.runtime_env_source}" if self.runtime_env_source else ""
        rendered = []
        for p in planned:
            env_prefix = [f"{k}={v}" for k, v in (p.env_vars or {}).items()]
            log_path = os.path.join(p.output_dir, LOG_NAME)
            text = (
                f"# ray task on {self.address} ({resources}{env_note}), cwd {shlex.quote(self.cwd)}\n"
                + shlex.join(env_prefix + p.argv)
                + f"  >> {shlex.quote(log_path)} 2>&1"
            )
            rendered.append(RenderedJob(planned=p, text=text, argv=list(p.argv), path=log_path))
        return rendered

    # ---- connect ----
    def connect(self) -> None:
        """Connect to the cluster (importing ray); ``submit`` does it when needed. Idempotent."""
        if self._remote is not None:
            return
        # auto: RAY_ADDRESS when set (a Ray job's entrypoint gets it), else Ray's own discovery.
        target = os.environ.get("RAY_ADDRESS", "") if self.address == "auto" else self.address
        host, _, port = target.rpartition(":") if target not in ("", "local", "auto") else ("", "", "")
        if self.address == "local" or host in _LOOPBACK:
            # Ray otherwise replaces a loopback address with the machine's primary IP, which a head bound
            # to 127.0.0.1 (scripts/ray-local.sh) does not listen on; read once, when ray is imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if host and port.isdigit():
            # ray.init retries an unreachable GCS for minutes; one clear error instead.
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
            except OSError as exc:
                raise LaunchError(
                    f"--ray_address {self.address}: nothing answers at {target} ({exc}); start a head "
                    "(bash scripts/ray-local.sh start) or pass HOST:PORT of a running one"
                ) from None
        try:
            import ray
        except ImportError:
            raise LaunchError(
                "--backend ray needs the ray package: pip install 'poptrain[ray]' (or use --ray_print_only)"
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if self.address == "local":
                kwargs.update(include_dashboard=False, _node_ip_address="127.0.0.1")
            try:
                context = ray.init(address=None if self.address == "local" else self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise LaunchError(
                    f"--ray_address {self.address}: cannot connect to a Ray cluster: {exc}; start one "
                    "(bash scripts/ray-local.sh start) or pass HOST:PORT of a running head"
                ) from None
            self._dashboard_url = getattr(context, "dashboard_url", "") or ""
        self._ray = ray
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_job,
            "num_gpus": self.gpus_per_job,
            # Restarts are the launcher's (counted, logged, with a new attempt number), and a dead slot is
            # replaced by a new actor, not restarted by Ray.
            "max_restarts": 0,
            "max_task_retries": 0,
            # the running member's call and the one queued behind it (SlotActor.run); Ray's pool threads
            # live as long as the actor, so PR_SET_PDEATHSIG (per starting thread) still means "the slot died"
            "max_concurrency": 2,
        }
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        self._remote = ray.remote(SlotActor).options(**options)

    # ---- submit / observe ----
    def submit(self, rendered: Sequence[RenderedJob]) -> None:
        if not rendered:
            return
        self.connect()
        if not self.attach:
            self._submit_launcher_job(rendered)
            return
        token = secrets.token_hex(8)
        for experiment_dir in sorted({r.planned.experiment_dir for r in rendered}):
            atomic_write(os.path.join(experiment_dir, PROBE_NAME), token + "\n")
        for r in rendered:
            p = r.planned
            spec = {
                "argv": list(r.argv),
                "cmd": p.cmd,
                "env_vars": dict(p.env_vars or {}),
                "cwd": self.cwd,
                "log_path": r.path or os.path.join(p.output_dir, LOG_NAME),
                "probe_path": os.path.join(p.experiment_dir, PROBE_NAME),
                "probe_token": token,
                "gpus_per_job": self.gpus_per_job,
                "max_attempts": self.max_restarts + 1,
                "kill_grace_s": self.kill_grace_s,
            }
            member = _Member(backend=self, rendered=r, status=JobStatus(name=r.name), spec=spec)
            self._members.append(member)
            self._queue.append(member)
        self._max_slots = max(1, min(len(self._members), self._cluster_slots()))
        self._step()

    def _cluster_slots(self) -> int:
        """How many members the cluster's live nodes hold at once with this launch's resources per member.

        At least one slot is started even when no node holds a member (Ray queues it: an autoscaler adds a
        node, or the error shows in ``ray status``), as Ray queued the tasks of the earlier task-per-member design.
        """
        per_job = {"CPU": self.cpus_per_job, "GPU": self.gpus_per_job}
        slots = 0
        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            have = node.get("Resources") or {}
            fits = [int(have.get(key, 0) / need + 1e-9) for key, need in per_job.items() if need > 0]
            slots += min(fits) if fits else 0
        return slots

    def _step(self) -> None:
        """Start and retire slots, notice the ones that came up, dispatch queued members to idle ones."""
        ray = self._ray
        pending = [slot for slot in self._slots if slot.ready_ref is not None]
        if pending:
            done, _ = ray.wait([s.ready_ref for s in pending], num_returns=len(pending), timeout=0)
            answered = {id(ref) for ref in done}
            for slot in pending:
                if id(slot.ready_ref) not in answered:
                    continue
                try:
                    ray.get(slot.ready_ref)
                except ray.exceptions.RayError as exc:
                    self._slots.remove(slot)
                    if getattr(exc, "actor_init_failed", False) or isinstance(
                        exc, ray.exceptions.RuntimeEnvSetupError
                    ):
                        # the same on every start (poptrain not importable there, a bad runtime_env): no retry
                        text = _ANSI.sub("", str(exc)).strip().splitlines()
                        self._setup_error = (
                            f"the Ray slot actor could not start on its node: {type(exc).__name__}: "
                            f"{text[-1] if text else ''}"
                        )[:400]
                        log.error("%s", self._setup_error)
                    continue  # else its node died while it started: another one is started below
                slot.ready_ref = None
                if not self._first_ready_at:
                    self._first_ready_at = time.monotonic()
        # one slot per member that waits or runs, up to what the cluster holds; none after a setup error
        busy = sum(1 for slot in self._slots if slot.member is not None)
        wanted = min(self._max_slots, busy + len(self._queue))
        while not self._setup_error and len(self._slots) < wanted:
            actor = self._remote.remote()
            self._slots.append(_Slot(actor=actor, ready_ref=actor.ready.remote()))
        if self._setup_error and not self._slots:
            while self._queue:
                member = self._queue.popleft()
                member.status.state = JobState.FAILED
                member.status.reason = self._setup_error
        self._dispatch()
        if self._queue:
            return
        idle = [s for s in self._slots if s.member is None and s.ready_ref is None]
        for slot in self._slots:
            # The queue ran dry: a member queued behind a running one (which may run for hours) is taken
            # back for an idle slot. Ray drops an actor call that has not started; one that has just
            # started sees the cancel flag before starting its child and answers "withdrawn".
            if idle and slot.next is not None and not slot.next.withdrawn:
                slot.next.withdrawn = True
                self._ray.cancel(slot.next.ref)
                idle.pop()
        if any(m.withdrawn for m in self._members):
            return  # the idle slots wait for the withdrawn members
        # nothing left to hand out: free the cluster's resources (a restart starts a new slot)
        for slot in [s for s in self._slots if s.member is None]:
            self._retire(slot)

    def _dispatch(self) -> None:
        if not self._dispatching:
            # Members start together once every slot is up: a population's members are compared at equal
            # epochs, and Ray brings the workers up seconds apart under load (0.3-5.2 s for 4 on the dev
            # machine). A slot Ray cannot place (the cluster is busy) holds them back slot_start_wait_s at most.
            up = [slot for slot in self._slots if slot.ready_ref is None]
            if not up:
                return
            if (
                len(up) < len(self._slots)
                and time.monotonic() < self._first_ready_at + self.slot_start_wait_s
            ):
                return
            self._dispatching = True
        # idle slots first; then, while members still wait, one more behind each running member: the actor
        # starts it the moment the running one ends, while this launcher (niced, on a loaded node) may take
        # tens of ms to hear of the end and answer (transition p90 58-96 ms at load 11-14 without it)
        for ahead in (False, True):
            for slot in self._slots:
                if not self._queue:
                    return
                if slot.ready_ref is not None or (slot.member is not None) != ahead or slot.next is not None:
                    continue
                if time.monotonic() - self._last_submit < self.pause_between:
                    return
                member = self._queue.popleft()
                member.attempt += 1
                member.withdrawn = False
                spec = dict(member.spec, attempt=member.attempt)
                member.ref = slot.actor.run.remote(spec)
                member.slot = slot
                if ahead:
                    slot.next = member
                else:
                    slot.member = member
                self._last_submit = time.monotonic()
                member.started_at = 0.0
                member.status.state = JobState.PENDING
                member.status.job_id = member.ref.task_id().hex()

    def _retire(self, slot: _Slot) -> None:
        """Stop a slot's actor (its worker process; a child still running dies with it: PR_SET_PDEATHSIG)."""
        if slot in self._slots:
            self._slots.remove(slot)
        with contextlib.suppress(Exception):  # already dead
            self._ray.kill(slot.actor, no_restart=True)

    def _attempt_record(self, member: _Member) -> dict[str, Any] | None:
        path = os.path.join(member.rendered.planned.output_dir, ATTEMPT_NAME)
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("attempt") == member.attempt else None

    def attempt_record(self, name: str) -> dict[str, Any] | None:
        """What the running attempt of experiment ``name`` wrote on its node (node, pid, worker_pid)."""
        for member in self._members:
            if member.status.name == name:
                return self._attempt_record(member)
        raise KeyError(name)

    def _finish(
        self, member: _Member, result: dict[str, Any] | None, error: str, started: bool = True
    ) -> None:
        """Book the end of ``member``'s attempt; ``started``: False when its slot died before it started."""
        now = time.monotonic()
        if member.started_at:
            member.runtime_before_s += now - member.started_at
        member.status.runtime_s = member.runtime_before_s
        member.ref = None
        slot = member.slot
        if slot is not None:
            if slot.member is member:
                slot.member, slot.next = slot.next, None  # the queued one is running now
            elif slot.next is member:
                slot.next = None
            member.slot = None
        if (
            member.withdrawn
            and not member.cancel_requested
            and (result is None or result["kind"] == "withdrawn")
        ):
            # taken back before it started (see _step): the same attempt on the next idle slot
            member.withdrawn = False
            member.attempt -= 1
            self._queue.appendleft(member)
            return
        member.withdrawn = False
        if result is not None and result["kind"] == "not_shared":
            member.status.state = JobState.FAILED
            member.status.reason = result["error"]
            self.cancel()
            raise LaunchError(result["error"])
        code = None if result is None or "code" not in result else int(result["code"])
        member.status.exit_code = code
        if member.cancel_requested or (result is not None and result["kind"] == "cancelled"):
            member.status.state = JobState.CANCELLED
            member.status.reason = "cancelled"
            return
        if code == 0:
            member.status.state = JobState.COMPLETED
            member.status.reason = ""
            return
        why = error or f"exit code {code}" + (f" ({result['error']})" if result and "error" in result else "")
        if not started:
            # nothing of this attempt ran: the same attempt again on another slot, no restart counted
            member.attempt -= 1
            self._requeue(
                member,
                f"{why} before the member started; it waits for another slot",
                f"waiting for a slot after {why}",
            )
            return
        if member.status.restarts < self.max_restarts:
            member.status.restarts += 1
            self._requeue(
                member,
                f"{why}; restart {member.status.restarts}/{self.max_restarts}",
                f"restarting after {why}",
            )
            return
        member.status.state = JobState.FAILED
        member.status.reason = why + (
            f" after {member.status.restarts} restart(s)" if member.status.restarts else ""
        )

    def _requeue(self, member: _Member, line: str, reason: str) -> None:
        """``member`` back at the head of the queue, pending with ``reason``; ``line`` goes to its log."""
        with open(member.spec["log_path"], "ab") as logf:
            logf.write(f"[launcher] {line}\n".encode())
        member.status.state = JobState.PENDING
        member.status.reason = reason
        self._queue.appendleft(member)

    def _submit_launcher_job(self, rendered: Sequence[RenderedJob]) -> None:
        """Without --ray_wait: run this launcher (with --ray_wait) as a Ray job on the head, and return.

        The job's driver owns the slot actors, so they outlive this process; ``ray job stop <id>`` sends it
        SIGTERM, and it cancels every member first.
        """
        from ray.job_submission import JobSubmissionClient

        if not self._dashboard_url:
            raise LaunchError(
                "--ray_address: the cluster has no dashboard (Ray's job API), so the launcher cannot submit "
                "itself as a Ray job; pass --ray_wait to watch the population from here"
            )
        entrypoint = f"cd {shlex.quote(self.cwd)} && {shlex.join(self.launcher_argv)}"
        client = JobSubmissionClient(f"http://{self._dashboard_url}")
        try:
            job_id = client.submit_job(entrypoint=entrypoint, runtime_env=self.runtime_env or None)
        except Exception as exc:  # the job API's errors are plain RuntimeError / requests errors
            raise LaunchError(f"ray job submit to {self._dashboard_url} failed: {exc}") from None
        log.info("submitted as Ray job %s: ray job logs -f %s / ray job stop %s", job_id, job_id, job_id)
        for r in rendered:
            status = JobStatus(name=r.name, job_id=job_id, reason=f"in Ray job {job_id}")
            self._members.append(
                _Member(backend=self, rendered=r, status=status, spec={"log_path": r.path or ""})
            )

    def poll(self) -> list[JobStatus]:
        if not self.attach:
            return [JobStatus(**vars(m.status)) for m in self._members]
        running = [m for m in self._members if m.ref is not None]
        if running:
            ready, _ = self._ray.wait([m.ref for m in running], num_returns=len(running), timeout=0)
            done = {id(ref) for ref in ready}
            for member in running:
                if id(member.ref) in done:
                    self._collect(member)
        self._step()
        now = time.monotonic()
        # The files (ray_attempt.json, log tails) of every unfinished member are read at most once per
        # poll_interval_s: pause() wakes this loop at every member's end (8 a second with 4 slots of 0.5 s
        # jobs), and 200 queued members meant 400 file opens per wake, CPU the 2-core dev machine's Ray
        # workers then lacked between two jobs.
        scan = now >= self._next_scan
        if scan:
            self._next_scan = now + self.poll_interval_s
        for member in self._members:
            if member.ref is None:
                continue
            if not member.started_at and scan:
                record = self._attempt_record(member)
                if record is not None:
                    member.started_at = now
                    member.status.state = JobState.RUNNING
            if member.started_at:
                member.status.runtime_s = member.runtime_before_s + now - member.started_at
        for member in self._members:
            if (member.ref is not None and scan) or (
                member.status.state.terminal and not member.status.last_line
            ):
                member.status.last_line = last_log_line(member.spec["log_path"])
        return [JobStatus(**vars(m.status)) for m in self._members]

    def _collect(self, member: _Member) -> None:
        ray = self._ray
        slot = member.slot
        try:
            result = ray.get(member.ref)
        except ray.exceptions.TaskCancelledError:
            self._finish(member, None, "withdrawn")  # a withdrawn (or cancelled) call that never started
        except ray.exceptions.RayActorError as exc:
            # The slot's worker or its node died (ActorDiedError): the child died with it (PR_SET_PDEATHSIG),
            # so starting the member again cannot make a second copy of it. The dead slot is dropped and
            # _step starts a new actor, which Ray places on a live node.
            if slot is not None:
                self._retire(slot)
            lines = _ANSI.sub("", str(exc)).strip().splitlines()
            first = lines[0] if lines else ""
            # an attempt whose ray_attempt.json is there had started its child: that counts as a restart
            started = self._attempt_record(member) is not None
            self._finish(member, None, f"{type(exc).__name__}: {first}"[:300], started=started)
        except ray.exceptions.RayTaskError as exc:
            # run_member itself raised on the node (e.g. the log folder cannot be written): the same on
            # every attempt, so no restart. The slot lives on.
            cause = getattr(exc, "cause", None) or exc
            text = _ANSI.sub("", str(cause)).strip().splitlines()
            member.status.restarts = self.max_restarts
            self._finish(
                member,
                None,
                f"the Ray task failed on its node: {type(cause).__name__}: {text[-1] if text else ''}"[:400],
            )
        except ray.exceptions.RayError as exc:
            # anything else Ray reports about the call (an object lost with its node): drop that slot too
            if slot is not None:
                self._retire(slot)
            lines = _ANSI.sub("", str(exc)).strip().splitlines()
            first = lines[0] if lines else ""
            self._finish(member, None, f"{type(exc).__name__}: {first}"[:300])
        else:
            self._finish(member, result, "")

    def pause(self, seconds: float) -> None:
        """Sleep until a member ends, a slot comes up, or ``seconds`` pass, so that a finished member is
        seen (and its slot given the next one) at once."""
        if self._queue and self.pause_between > 0:
            seconds = min(seconds, max(0.0, self._last_submit + self.pause_between - time.monotonic()))
        refs = [m.ref for m in self._members if m.ref is not None]
        refs += [slot.ready_ref for slot in self._slots if slot.ready_ref is not None]
        if refs and self._ray is not None:
            with _signal_exceptions_unwrapped():
                self._ray.wait(refs, num_returns=1, timeout=seconds)
        else:
            time.sleep(seconds)

    def cancel(self) -> None:
        while self._queue:
            member = self._queue.popleft()
            member.status.state = JobState.CANCELLED
            member.status.reason = "cancelled before start"
        running = [m for m in self._members if m.ref is not None]
        for member in running:
            member.cancel_requested = True
            if member.slot is not None and member.slot.next is member:
                self._ray.cancel(member.ref)  # queued behind another: Ray drops it unstarted
            # The member's run sees this within 0.5 s and stops its child's process group (SIGTERM, SIGKILL
            # kill_grace_s later). Ray's own cancel interrupts only tasks, and took 18-35+ s under load here.
            marker = os.path.join(os.path.dirname(member.spec["log_path"]), CANCEL_NAME)
            try:
                atomic_write(marker, str(member.spec["probe_token"]))
            except OSError as exc:
                log.warning(
                    "%s: cannot write the cancel marker %s (%s); killing its slot",
                    member.status.name,
                    marker,
                    exc,
                )
                if member.slot is not None:
                    self._retire(member.slot)
        deadline = time.monotonic() + self.kill_grace_s + 30
        for member in running:
            try:
                self._ray.get(member.ref, timeout=max(0.1, deadline - time.monotonic()))
            except self._ray.exceptions.GetTimeoutError:
                # its child dies with the slot's worker (PR_SET_PDEATHSIG), its own children may not
                log.warning("%s: its slot did not stop it after cancel; killing the slot", member.status.name)
                if member.slot is not None:
                    self._retire(member.slot)
            except Exception:  # the slot died meanwhile: so did the child
                pass
            self._finish(member, None, "cancelled")
        for slot in list(self._slots):
            self._retire(slot)
