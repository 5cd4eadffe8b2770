"""The backend contract: render -> submit -> observe (poll / wait) -> cancel, and the registry of backends.

Every backend turns the planned experiments into :class:`RenderedJob` values first (the command line, the
sbatch script, the ``ngc batch run`` command): pure text that tests compare with expected text and that
``--dry_run`` / ``--*_print_only`` print. ``submit`` starts them, each behind a :class:`Job` handle (id, state,
cancel; ``jobs()`` lists them); ``poll`` reports one :class:`JobStatus` per job; ``wait`` polls until every job
is terminal; ``cancel`` stops whatever still runs.

Adding a backend is one module in this package: a :class:`Backend` subclass decorated with
:func:`register_backend`, which makes it ``--backend <name>`` with its own flags (``add_args``). Backends whose
jobs a command-line tool submits (sbatch, ngc) share :class:`~poptrain.launcher.backends.cli_jobs.CliJobBackend`.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import os
import pkgutil
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from poptrain.atomic import atomic_write as durable_write
from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.run_description import PlannedExperiment

LOG_NAME = "log.txt"
"""Each experiment's stdout+stderr go to ``<output_dir>/log.txt`` (processes and slurm backends)."""


class JobState(str, enum.Enum):
    """Where a job is in its life; the last four are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def terminal(self) -> bool:
        """True once the job will not change state again."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT)


@dataclass(frozen=True)
class RenderedJob:
    """One experiment as its backend will start it."""

    planned: PlannedExperiment
    """What to run."""
    text: str
    """The rendered form (command line, sbatch script, ngc command) printed by --dry_run."""
    argv: list[str] = field(default_factory=list)
    """What the launcher executes to start it (the child itself, or ``sbatch``/``ngc`` with arguments)."""
    path: str | None = None
    """A file this rendering is written to on submit (sbatch script), if any."""

    @property
    def name(self) -> str:
        """The experiment name."""
        return self.planned.name


@dataclass
class JobStatus:
    """What the launcher knows about one job right now."""

    name: str
    """Experiment name."""
    state: JobState = JobState.PENDING
    """Current state."""
    job_id: str = ""
    """Backend id: a pid, a SLURM job id, an NGC job id."""
    exit_code: int | None = None
    """Exit code once terminal (None when unknown)."""
    restarts: int = 0
    """How many times the launcher relaunched it after a crash."""
    runtime_s: float = 0.0
    """Seconds it has been running (total over restarts)."""
    last_line: str = ""
    """The last non-empty line of its log, when the backend can see it."""
    reason: str = ""
    """Why it is in this state, when the backend says (e.g. a time limit, an sbatch error)."""


@dataclass(eq=False, kw_only=True)
class Job:
    """A handle on one submitted experiment (as submitit's ``Job``): its backend id, name, state, and cancel.

    The backend updates ``status`` in place at every poll; :meth:`snapshot` is a copy that stays as it was.
    Backends keep their own per-job bookkeeping in subclasses (the processes backend's ``Popen``, ...).
    """

    backend: Backend = field(repr=False)
    """The backend that submitted it (and cancels it)."""
    rendered: RenderedJob
    """What was submitted."""
    status: JobStatus
    """What the backend saw at its last poll."""

    @property
    def id(self) -> str:
        """The backend's id (a pid, a SLURM job id, an NGC job id); '' when it was never submitted."""
        return self.status.job_id

    @property
    def name(self) -> str:
        """The experiment name."""
        return self.status.name

    @property
    def state(self) -> JobState:
        """The state at the backend's last poll."""
        return self.status.state

    @property
    def done(self) -> bool:
        """True once the job will not change state again."""
        return self.status.state.terminal

    def snapshot(self) -> JobStatus:
        """A copy of the current status that later polls leave unchanged."""
        return dataclasses.replace(self.status)

    def cancel(self) -> None:
        """Stop this job alone (the others keep running)."""
        self.backend.cancel_jobs([self])


def last_log_line(path: str | None, max_bytes: int = 4096) -> str:
    """The last non-empty line of a log file ('' when absent); reads only its tail."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        if line.strip():
            return line.strip()[:200]
    return ""


def atomic_write(path: str, text: str, mode: int = 0o644) -> None:
    """Write a text file another process reads with ``poptrain.atomic.atomic_write`` (fsync'ed, torch-free)."""
    durable_write(path, lambda f: f.write(text.encode("utf-8")), mode=mode)


def require_executable(name: str, print_only_flag: str) -> str:
    """The path of ``name`` on PATH, or a LaunchError saying so and suggesting the print-only flag."""
    path = shutil.which(name)
    if path is None:
        raise LaunchError(
            f"'{name}' is not on PATH; install its CLI, or use {print_only_flag} to only render the jobs"
        )
    return path


# ---- flags ------------------------------------------------------------------------------------------
_TRUE, _FALSE = ("true", "1", "yes", "y", "on"), ("false", "0", "no", "n", "off")


def parse_bool(text: str) -> bool:
    """``True``/``False`` (any case), 1/0, yes/no, on/off -> bool (IsaacGymEnvs writes ``--x_print_only True``)."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; valid: True/False, 1/0, yes/no, on/off")


def add_bool_flag(group: argparse._ActionsContainer, name: str, help: str) -> None:
    """A flag that works alone (``--x``, as before) and with a value (``--x True`` / ``--x False``)."""
    group.add_argument(
        name,
        nargs="?",
        const=True,
        default=False,
        type=parse_bool,
        metavar="BOOL",
        help=help + " (flag or BOOL)",
    )


# ---- {{placeholder}} templates ----------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_placeholders(template: str) -> list[str]:
    """The ``{{name}}`` placeholders in a template, in order of first use."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def check_template(template: str, valid: Sequence[str], source: str) -> None:
    """Raise ConfigError naming every unknown placeholder in ``template`` and the valid ones."""
    unknown = [p for p in template_placeholders(template) if p not in valid]
    if unknown:
        raise ConfigError(
            f"{source}: unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
            f"valid: {', '.join('{{' + v + '}}' for v in valid)}"
        )


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{name}}`` with ``values[name]`` in one pass (values are not re-scanned)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def read_template(path: str, flag: str) -> str:
    """The text of a user template file, or a ConfigError naming the flag and the path."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{flag} {path!r} cannot be read: {exc.strerror}") from None


# ---- the contract -----------------------------------------------------------------------------------
class Backend:
    """Base class of the backends; subclasses implement render/submit/poll/cancel."""

    name: ClassVar[str] = ""
    """The value of ``--backend`` that selects this backend."""
    attached: ClassVar[bool] = False
    """True when the jobs live only as long as the launcher (it must wait for them)."""
    owns_jobs: ClassVar[bool] = False
    """True when a launcher that watches its jobs also owns them (a Ray driver): a signal cancels them."""
    poll_interval_s: float = 1.0
    """Seconds between polls in :meth:`wait`."""
    asked_to_wait: bool = False
    """``--<name>_wait``: the launcher stays after submitting and shows the job states until all end."""

    @property
    def watch(self) -> bool:
        """True when the launcher must watch the jobs after submitting them (attached, or asked to wait)."""
        return self.attached or self.asked_to_wait

    @classmethod
    def add_wait_flag(cls, group: argparse._ActionsContainer) -> None:
        """``--<name>_wait``: the flag a detached backend offers to stay and watch its jobs."""
        add_bool_flag(group, f"--{cls.name}_wait", "stay and show job states until all finish")

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        """Add this backend's own command-line arguments."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Backend:
        """Build the backend from parsed arguments (validating them)."""
        raise NotImplementedError

    @property
    def print_only(self) -> bool:
        """True when submit must only print what it would do."""
        return False

    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        """Turn the planned experiments into text; starts nothing, writes nothing."""
        raise NotImplementedError

    def submit(self, rendered: Sequence[RenderedJob]) -> None:
        """Start (or enqueue) the rendered jobs."""
        raise NotImplementedError

    def poll(self) -> list[JobStatus]:
        """One observation of every submitted job (processes: also advances its scheduler)."""
        raise NotImplementedError

    def jobs(self) -> list[Job]:
        """A handle on every submitted job, in submission order."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop every job that has not finished; idempotent."""
        raise NotImplementedError

    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        """Stop these jobs (finished ones are skipped); what :meth:`Job.cancel` calls."""
        raise LaunchError(f"--backend {self.name} cannot stop single jobs; cancel() stops them all")

    def wait(
        self,
        timeout_s: float | None = None,
        on_update: Callable[[list[JobStatus]], None] | None = None,
    ) -> list[JobStatus]:
        """Poll until every job is terminal (or ``timeout_s`` passes: LaunchError); return the statuses."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            statuses = self.poll()
            if on_update is not None:
                on_update(statuses)
            if all(s.state.terminal for s in statuses):
                return statuses
            if deadline is not None and time.monotonic() > deadline:
                running = [s.name for s in statuses if not s.state.terminal]
                raise LaunchError(f"{self.name}: jobs still not finished after {timeout_s} s: {running}")
            self.pause(self.poll_interval_s)

    def pause(self, seconds: float) -> None:
        """Sleep between two polls of :meth:`wait` (a backend may wake up early when a job ends)."""
        time.sleep(seconds)


# ---- the registry ----------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator of a backend module: makes ``cls`` selectable as ``--backend <cls.name>``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name):
        raise TypeError(f"{cls.__qualname__}.name {cls.name!r}: valid: lower-case letters, digits, _")
    known = _REGISTRY.get(cls.name)
    if (
        known is not None and known.__qualname__ != cls.__qualname__
    ):  # a re-imported module may register again
        raise TypeError(f"--backend {cls.name} is registered twice: {known.__module__} and {cls.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def backend_classes() -> dict[str, type[Backend]]:
    """``--backend`` value -> class, in name order.

    Imports every module of this package once; each registers its backend. Importing them is cheap and needs
    no optional package: ray.py imports ray only when it connects to a cluster.
    """
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def backend_names() -> tuple[str, ...]:
    """Valid values of ``--backend``."""
    return tuple(backend_classes())
