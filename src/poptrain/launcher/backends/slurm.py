"""Submit each experiment as one SLURM batch job.

``render`` fills an sbatch template per experiment (the built-in :data:`DEFAULT_SBATCH_TEMPLATE` or
``--slurm_sbatch_template FILE``); ``submit`` writes the scripts to
``<slurm_workdir>/<run_name>/<experiment>.sbatch``, runs ``sbatch --parsable`` on each, and writes
``jobs.json`` (name -> job id) and ``scancel.sh`` (cancels them all) beside them. Job state comes from
``scontrol show job`` (no accounting database needed). The job's stdout+stderr go to the same
``<output_dir>/log.txt`` as with the processes backend (append mode, so a requeued job continues it).

Template placeholders (``{{name}}``; anything else is an error naming it):

==================  ===========================================================================
``sbatch_options``  the ``#SBATCH`` lines built from the --slurm_* options (job name, output, ...)
``job_name``        ``<run_name>-<experiment name>``
``name``            the experiment name;  ``run_name``: the run's name
``cmd``             the command, shell-quoted (``shlex.join``)
``cwd``             the launcher's working directory (shell-quoted); the job ``cd``s there
``env_exports``     ``export K=V`` lines for the experiment's env_vars (may be empty)
``log_path``        ``<output_dir>/log.txt``;  ``output_dir``: ``<experiment_dir>/<name>``
``experiment_dir``  the folder passed as the experiment's train_dir
``gpus_per_job`` ``cpus_per_task`` ``partition`` ``timeout`` ``mem``: the option values as text
==================  ===========================================================================

IsaacGymEnvs' sbatch templates (``$CMD``, ``$FILENAME``, ``$PARTITION``, ``$GPU``, ``$CPU``, ``$TIMEOUT``,
string.Template syntax) are recognised by ``$CMD`` and rendered as its run_slurm does (see ``_render_ige``).

CPUs per job: ``--slurm_gpus_per_job N`` (N > 0) asks N x ``--slurm_cpus_per_gpu``; a CPU-only job
(``--slurm_gpus_per_job 0``) asks ``--slurm_cpus_per_task`` (default 1, so a population fits a small node).

A job that can never start as submitted (pending reason in :data:`NEVER_START_REASONS`, e.g.
``PartitionConfig`` when it asks more CPUs than any node has) is an error naming the reason: at submission
(``submit`` polls up to ``never_start_polls`` times) and in ``--slurm_wait``. Such a job is cancelled: it
would otherwise sit in the queue forever while the launcher reports nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Sequence

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import (
    LOG_NAME,
    Job,
    JobState,
    JobStatus,
    RenderedJob,
    add_bool_flag,
    atomic_write,
    check_template,
    fill_template,
    read_template,
    register_backend,
    template_placeholders,
)
from poptrain.launcher.backends.cli_jobs import CliJobBackend
from poptrain.launcher.run_description import PlannedExperiment

log = logging.getLogger(__name__)

PLACEHOLDERS = (
    "sbatch_options",
    "job_name",
    "name",
    "run_name",
    "cmd",
    "cwd",
    "env_exports",
    "log_path",
    "output_dir",
    "experiment_dir",
    "gpus_per_job",
    "cpus_per_task",
    "partition",
    "timeout",
    "mem",
)
"""Valid ``{{placeholders}}`` of an sbatch template."""

DEFAULT_SBATCH_TEMPLATE = """\
#!/bin/bash
{{sbatch_options}}
# poptrain experiment {{name}} of run {{run_name}}
set -eo pipefail
cd {{cwd}}
{{env_exports}}
export POPTRAIN_LAUNCH_ATTEMPT=$(( ${SLURM_RESTART_COUNT:-0} + 1 ))
echo "[launcher] slurm job ${SLURM_JOB_ID} attempt ${POPTRAIN_LAUNCH_ATTEMPT} on $(hostname): {{name}}"
exec {{cmd}}
"""
"""The built-in template: runs the command in the batch step (exec, so signals reach it)."""

# scontrol JobState -> ours. Anything not listed is reported as RUNNING by map_slurm_state's fallback.
_STATE_MAP = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.CANCELLED,
}


# Pending reasons after which the scheduler will not start the job without a resubmission or an admin. Not
# listed (normal waiting): Resources, Priority, Dependency, QOS*Limit per user (clears when jobs end), BeginTime.
NEVER_START_REASONS = {
    "PartitionConfig": "it asks for more than the partition allows (CPUs, GPUs or memory per job, or nodes)",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "its time limit (--slurm_timeout) exceeds the partition's",
    "BadConstraints": "no node can satisfy its constraints (resources or features)",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "InvalidAccount": "its account is invalid",
    "InvalidQOS": "its QOS is invalid",
}
"""SLURM pending reason -> why the job can never start as submitted."""


# SLURM's --time formats (sbatch man page): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, plus UNLIMITED / INFINITE.
_TIME_FORMAT = re.compile(r"\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+(:\d+){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)


# ---- IsaacGymEnvs-style ($NAME) sbatch templates ---------------------------------------------------------
IGE_PLACEHOLDERS = ("CMD", "FILENAME", "PARTITION", "GPU", "CPU", "TIMEOUT")
"""The placeholders IsaacGymEnvs' run_slurm fills (string.Template syntax: ``$CMD``, ``${CMD}``, ``$$``)."""

_IGE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_A-Za-z][_A-Za-z0-9]*)|\{(?P<braced>[_A-Za-z][_A-Za-z0-9]*)\}|)"
)


def ige_placeholders(template: str) -> list[str]:
    """Every ``$NAME`` / ``${NAME}`` in a string.Template-style template (``$$`` is a literal ``$``)."""
    return [
        m.group("named") or m.group("braced")
        for m in _IGE.finditer(template)
        if not m.group("escaped") and (m.group("named") or m.group("braced"))
    ]


def is_ige_template(template: str) -> bool:
    """True for an IsaacGymEnvs sbatch template: no ``{{placeholder}}`` and a ``$CMD`` (or ``${CMD}``)."""
    return not template_placeholders(template) and "CMD" in ige_placeholders(template)


def check_ige_template(template: str, source: str) -> None:
    """ConfigError naming the first ``$`` that IsaacGymEnvs' string.Template would refuse (KeyError/ValueError)."""
    for m in _IGE.finditer(template):
        name = m.group("named") or m.group("braced")
        if m.group("escaped"):
            continue
        if not name:
            line = template.count("\n", 0, m.start()) + 1
            raise ConfigError(
                f"{source}: line {line}: a '$' that starts no placeholder; write $$ for a literal $ "
                f"(IsaacGymEnvs-style template, string.Template syntax)"
            )
        if name not in IGE_PLACEHOLDERS:
            raise ConfigError(
                f"{source}: unsupported placeholder ${name} in an IsaacGymEnvs-style template; valid: "
                f"{', '.join('$' + n for n in IGE_PLACEHOLDERS)} (write $${name} for a shell variable)"
            )


def fill_ige_template(template: str, values: dict[str, str]) -> str:
    """string.Template.substitute semantics for the validated template (values are not re-scanned)."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        return values[m.group("named") or m.group("braced")]

    return _IGE.sub(one, template)


def slurm_time_seconds(text: str) -> int:
    """A SLURM --time value in seconds (0 = no limit), for coreutils ``timeout`` in IGE templates."""
    text = (text or "0").upper()
    if text in ("UNLIMITED", "INFINITE"):
        return 0
    days, _, clock = text.rpartition("-")
    parts = [int(x) for x in clock.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        parts += [0] * (3 - len(parts))
        h, m, sec = parts
        return int(days) * 86400 + h * 3600 + m * 60 + sec
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def never_start_reason(reason: str) -> str | None:
    """The NEVER_START_REASONS key of a scontrol ``Reason`` (``ReqNodeNotAvail,_UnavailableNodes:n1``)."""
    key = re.split(r"[,(\s]", reason or "", maxsplit=1)[0]
    return key if key in NEVER_START_REASONS else None


def map_slurm_state(slurm_state: str) -> JobState:
    """Our JobState for a SLURM JobState (``CANCELLED by 0`` counts as CANCELLED)."""
    key = slurm_state.split()[0].rstrip("+") if slurm_state else ""
    return _STATE_MAP.get(key, JobState.RUNNING)


_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_scontrol_jobs(text: str) -> dict[str, dict[str, str]]:
    """``scontrol show job -o`` output (one job per line) -> {job_id: {field: value}}."""
    jobs = {}
    for line in text.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


@register_backend
class SlurmBackend(CliJobBackend):
    """One sbatch job per experiment (``--slurm_slots K``: one job per time-sliced PBT slot, each hosting
    several members in turn; see ``poptrain.pbt.slots``)."""

    name = "slurm"
    cwd: str
    """The launcher's working directory (or ``cwd``): where sbatch runs and where each job cd's."""

    def __init__(
        self,
        workdir: str = "slurm_workdir",
        gpus_per_job: int = 1,
        cpus_per_gpu: int = 4,
        cpus_per_task: int = 1,
        partition: str = "",
        timeout: str = "0",
        mem: str = "",
        requeue: bool = False,
        print_only: bool = False,
        stop_on_error: bool = False,
        template: str | None = None,
        template_source: str = "--slurm_sbatch_template",
        cwd: str | None = None,
        poll_interval_s: float = 1.0,
        never_start_polls: int = 3,
        pause_between: float = 0.0,
        slots: int = 0,
        wait: bool = False,
    ):
        problems = []
        if slots < 0:
            problems.append(f"--slurm_slots {slots}: valid: 0 (one job per member) or >= 1")
        if gpus_per_job < 0:
            problems.append(f"--slurm_gpus_per_job {gpus_per_job}: valid: an integer >= 0 (0 = no GPU)")
        if cpus_per_gpu < 1:
            problems.append(f"--slurm_cpus_per_gpu {cpus_per_gpu}: valid: an integer >= 1")
        if cpus_per_task < 1:
            problems.append(f"--slurm_cpus_per_task {cpus_per_task}: valid: an integer >= 1")
        if not _TIME_FORMAT.fullmatch(timeout or "0"):
            problems.append(
                f"--slurm_timeout {timeout!r}: valid: SLURM --time formats: minutes, minutes:seconds, "
                "hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds, "
                "UNLIMITED/INFINITE (0 = no limit)"
            )
        if mem and not re.fullmatch(r"\d+[KMGT]?", mem):
            problems.append(f"--slurm_mem {mem!r}: valid: a number with an optional K/M/G/T suffix, e.g. 8G")
        if pause_between < 0:
            problems.append(f"--pause_between {pause_between}: valid: seconds >= 0")
        if partition and not re.fullmatch(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*", partition):
            # a newline here ended the #SBATCH line and ran the rest as a shell command in the job
            problems.append(
                f"--slurm_partition {partition!r}: valid: partition names of letters, digits, _ . - "
                "(comma-separated for several)"
            )
        if problems:
            raise ConfigError("; ".join(problems))
        super().__init__(
            print_only=print_only,
            pause_between=pause_between,
            poll_interval_s=poll_interval_s,
            stop_on_error=stop_on_error,
            wait=wait,
            cwd=os.path.abspath(cwd or os.getcwd()),
        )
        self.template = DEFAULT_SBATCH_TEMPLATE if template is None else template
        # IsaacGymEnvs' run_slurm fills $CMD-style placeholders (string.Template); ours are {{cmd}}
        self.ige_template = is_ige_template(self.template)
        if self.ige_template:
            check_ige_template(self.template, template_source)
        else:
            check_template(self.template, PLACEHOLDERS, template_source)
            used = template_placeholders(self.template)
            if "cmd" not in used:
                raise ConfigError(
                    f"{template_source}: the template never runs the experiment (no {{{{cmd}}}}, nor "
                    f"IsaacGymEnvs' $CMD); valid placeholders: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}"
                )
            if gpus_per_job > 0 and not {"sbatch_options", "gpus_per_job"} & set(used):
                raise ConfigError(
                    f"{template_source}: --slurm_gpus_per_job {gpus_per_job} but the template never requests a GPU "
                    "(it has neither {{sbatch_options}} nor {{gpus_per_job}}); add {{sbatch_options}} after the "
                    "shebang, or use --slurm_gpus_per_job 0"
                )
        self.workdir = os.path.abspath(workdir)
        self.gpus_per_job = gpus_per_job
        self.cpus_per_gpu = cpus_per_gpu
        self.cpus_per_cpu_job = cpus_per_task
        self.partition = partition
        self.timeout = timeout or "0"
        self.mem = mem
        self.requeue = requeue
        # a never-start reason must be seen this many polls in a row (a job can show ReqNodeNotAvail for one
        # scheduler pass while a node reboots); 3 polls = ~2 s at the default 1 s interval
        self.never_start_polls = max(1, never_start_polls)
        self._never_seen: dict[str, int] = {}
        self.slots = slots

    @property
    def cpus_per_task(self) -> int:
        """CPUs per job: gpus x cpus_per_gpu, or --slurm_cpus_per_task for a CPU-only job."""
        if self.gpus_per_job > 0:
            return self.cpus_per_gpu * self.gpus_per_job
        return self.cpus_per_cpu_job

    # ---- CLI ----
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("slurm backend")
        g.add_argument(
            "--slurm_workdir", default="slurm_workdir", help="where sbatch scripts, jobs.json, scancel.sh go"
        )
        g.add_argument("--slurm_gpus_per_job", type=int, default=1, help="GPUs per job (0 = no GPU request)")
        g.add_argument("--slurm_cpus_per_gpu", type=int, default=4, help="CPUs per GPU (jobs with GPUs)")
        g.add_argument(
            "--slurm_cpus_per_task", type=int, default=1, help="CPUs per job when --slurm_gpus_per_job 0"
        )
        g.add_argument("--slurm_partition", default="", help="partition (default: the cluster's default)")
        g.add_argument(
            "--slurm_timeout",
            default="0",
            help="SLURM --time: 90, 1:30:00, 2-00, 2-12:30, UNLIMITED (0 = none)",
        )
        g.add_argument("--slurm_mem", default="", help="memory per job, e.g. 16G (default: cluster default)")
        add_bool_flag(g, "--slurm_requeue", "requeue jobs on preemption / node failure")
        add_bool_flag(g, "--slurm_print_only", "print the sbatch scripts; submit nothing")
        add_bool_flag(g, "--slurm_stop_on_error", "stop submitting at the first sbatch error")
        g.add_argument(
            "--slurm_sbatch_template", default=None, help="sbatch template file with {{placeholders}}"
        )
        cls.add_wait_flag(g)
        g.add_argument(
            "--slurm_slots",
            type=int,
            default=0,
            help="time-sliced PBT: each population's members in K jobs, several per job (0 = one job per member)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SlurmBackend:
        template = None
        if args.slurm_sbatch_template:
            template = read_template(args.slurm_sbatch_template, "--slurm_sbatch_template")
        return cls(
            workdir=args.slurm_workdir,
            gpus_per_job=args.slurm_gpus_per_job,
            cpus_per_gpu=args.slurm_cpus_per_gpu,
            cpus_per_task=args.slurm_cpus_per_task,
            partition=args.slurm_partition,
            timeout=args.slurm_timeout,
            mem=args.slurm_mem,
            requeue=args.slurm_requeue,
            print_only=args.slurm_print_only,
            stop_on_error=args.slurm_stop_on_error,
            pause_between=args.pause_between,
            template=template,
            template_source=f"--slurm_sbatch_template {args.slurm_sbatch_template}",
            slots=getattr(args, "slurm_slots", 0),
            wait=args.slurm_wait,
        )

    # ---- render ----
    def sbatch_options(self, job_name: str, log_path: str) -> str:
        """The ``#SBATCH`` lines for one job."""
        lines = [
            f"--job-name={job_name}",
            f"--output={log_path}",
            "--open-mode=append",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={self.cpus_per_task}",
        ]
        if self.gpus_per_job > 0:
            lines.append(f"--gres=gpu:{self.gpus_per_job}")
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.timeout != "0":
            lines.append(f"--time={self.timeout}")
        if self.mem:
            lines.append(f"--mem={self.mem}")
        lines.append("--requeue" if self.requeue else "--no-requeue")
        return "\n".join(f"#SBATCH {shlex.quote(line)}" for line in lines)

    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        if self.slots:
            from poptrain.pbt.slots import plan_slots

            planned = plan_slots(planned, self.slots)
        rendered = []
        for p in planned:
            job_name = f"{p.run_name}-{p.name}"
            log_path = os.path.join(p.output_dir, LOG_NAME)
            exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in (p.env_vars or {}).items())
            values = {
                "sbatch_options": self.sbatch_options(job_name, log_path),
                "job_name": job_name,
                "name": p.name,
                "run_name": p.run_name,
                "cmd": p.cmd,
                "cwd": shlex.quote(self.cwd),
                "env_exports": exports,
                "log_path": log_path,
                "output_dir": p.output_dir,
                "experiment_dir": p.experiment_dir,
                "gpus_per_job": str(self.gpus_per_job),
                "cpus_per_task": str(self.cpus_per_task),
                "partition": self.partition,
                "timeout": self.timeout,
                "mem": self.mem,
            }
            # one-line values: a newline in a path or name (e.g. --train_dir) would end its #SBATCH / echo line
            # and run the rest as a shell command of the job
            for key in ("job_name", "name", "run_name", "log_path", "output_dir", "experiment_dir", "cwd"):
                if any(c in values[key] for c in "\n\r\0"):
                    raise ConfigError(
                        f"{key} {values[key]!r} holds a newline or NUL, which would break out of the sbatch "
                        "script; valid: a single line (check --train_dir and the experiment names)"
                    )
            script_path = os.path.join(self.workdir, p.run_name, f"{p.name}.sbatch")
            if self.ige_template:
                text = self._render_ige(p, job_name, log_path, exports, script_path)
            else:
                text = fill_template(self.template, values)
            rendered.append(
                RenderedJob(
                    planned=p,
                    text=text,
                    argv=["sbatch", "--parsable", script_path],
                    path=script_path,
                )
            )
        return rendered

    def _render_ige(self, p: PlannedExperiment, job_name: str, log_path: str, exports: str, path: str) -> str:
        """An IsaacGymEnvs-style template: $CMD & co. filled as its run_slurm does, plus what run_slurm put on
        the sbatch command line (CPUs, GPUs, partition, output) as #SBATCH lines after the shebang, so the job
        never silently asks no GPU. A template using $TIMEOUT keeps its time limit itself (IGE's
        sbatch_timeout.sh: ``timeout $TIMEOUT $CMD`` then resubmits): no --time line then."""
        values = {
            "CMD": p.cmd,
            "FILENAME": path,
            "PARTITION": f"-p {self.partition} " if self.partition else "",
            "GPU": str(self.gpus_per_job),
            "CPU": str(self.cpus_per_task),
            "TIMEOUT": str(slurm_time_seconds(self.timeout)),
        }
        body = fill_ige_template(self.template, values)
        options = self.sbatch_options(job_name, log_path)
        if "TIMEOUT" in ige_placeholders(self.template):
            options = "\n".join(ln for ln in options.splitlines() if not ln.startswith("#SBATCH --time="))
        shebang, _, rest = body.partition("\n") if body.startswith("#!") else ("#!/bin/bash", "", body)
        head = f"{shebang}\n{options}\n# poptrain experiment {p.name} of run {p.run_name} (IsaacGymEnvs-style template)\n"
        return head + (exports + "\n" if exports else "") + rest

    # ---- submit / observe (the loop is CliJobBackend's) ----
    def prepare(self, rendered: Sequence[RenderedJob]) -> None:
        for r in rendered:
            assert r.path is not None
            atomic_write(r.path, r.text, mode=0o755)
            os.makedirs(r.planned.output_dir, exist_ok=True)  # sbatch does not create the --output folder

    def parse_job_id(self, stdout: str) -> str:
        return stdout.strip().split(";")[0]  # --parsable prints "<id>[;<cluster>]"

    def submit_failure(self, r: RenderedJob, proc: subprocess.CompletedProcess[str]) -> str:
        return (
            f"sbatch {r.path} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )

    def after_submit(self, jobs: list[Job], errors: list[str]) -> None:
        self._write_records()
        super().after_submit(jobs, errors)
        self._check_startable()

    def cancel_hint(self) -> str:
        return f"; cancel them with {self.scancel_path}"

    def log_path(self, job: Job) -> str | None:
        return os.path.join(job.rendered.planned.output_dir, LOG_NAME)

    def _check_startable(self) -> None:
        """Poll a few times after submission; LaunchError naming every job that can never start."""
        for attempt in range(self.never_start_polls):
            try:
                statuses = self.poll()
            except LaunchError as exc:  # the jobs are submitted: a missing scontrol must not hide that
                log.warning("cannot check whether the jobs can start: %s", exc)
                return
            doomed = [
                s for s in statuses if s.state is JobState.FAILED and s.reason.startswith("can never start")
            ]
            if doomed:
                lines = "\n  ".join(f"{s.name} [job {s.job_id}]: {s.reason}" for s in doomed)
                raise LaunchError(f"{len(doomed)} job(s) can never start and were cancelled:\n  {lines}")
            suspicious = any(s.state is JobState.PENDING and s.job_id in self._never_seen for s in statuses)
            if not suspicious:
                return
            if attempt + 1 < self.never_start_polls:
                time.sleep(self.poll_interval_s)

    @property
    def jobs_path(self) -> str:
        """``jobs.json``: experiment name -> job id, for the last submission."""
        run = self._jobs[0].rendered.planned.run_name if self._jobs else "run"
        return os.path.join(self.workdir, run, "jobs.json")

    @property
    def scancel_path(self) -> str:
        """``scancel.sh``: cancels every job of the last submission."""
        return os.path.join(os.path.dirname(self.jobs_path), "scancel.sh")

    def _write_records(self) -> None:
        ids = {j.name: j.id for j in self._jobs if j.id}
        atomic_write(self.jobs_path, json.dumps(ids, indent=2) + "\n")
        body = "#!/bin/sh\n# Cancels the jobs of this run (written by poptrain-launch).\n"
        if ids:
            body += "exec scancel " + " ".join(ids.values()) + "\n"
        atomic_write(self.scancel_path, body, mode=0o755)

    def observe(self, jobs: list[Job]) -> None:
        # one `scontrol show job -o` for all jobs: no accounting database (sacct) needed
        found = parse_scontrol_jobs(self.run_cli(["scontrol", "show", "job", "-o"]).stdout)
        doomed = []
        for j in jobs:
            fields = found.get(j.id)
            if fields is None:
                continue
            self._update(j.status, fields)
            if self._never_starts(j.status, fields):
                doomed.append(j.id)
        if doomed:
            for argv in self.cancel_argv(doomed):
                self.run_cli(argv)

    @staticmethod
    def _update(status: JobStatus, fields: dict[str, str]) -> None:
        slurm_state = fields.get("JobState", "")
        status.state = map_slurm_state(slurm_state)
        exit_code = fields.get("ExitCode", "")
        if ":" in exit_code:
            code, sig = exit_code.split(":", 1)
            status.exit_code = int(code) if code.isdigit() else None
            if sig.isdigit() and int(sig) and status.exit_code == 0:
                status.exit_code = 128 + int(sig)
        status.restarts = int(fields.get("Restarts", "0") or 0)
        reason = fields.get("Reason", "None")
        status.reason = slurm_state if reason in ("None", "") else f"{slurm_state} ({reason})"
        if status.state is JobState.TIMEOUT:
            status.reason = f"TIMEOUT: killed at its time limit {fields.get('TimeLimit', '?')}"
        status.runtime_s = _parse_duration(fields.get("RunTime", "0"))

    def _never_starts(self, status: JobStatus, fields: dict[str, str]) -> bool:
        """Mark a job FAILED once it has pended with a never-start reason for ``never_start_polls`` polls."""
        key = never_start_reason(fields.get("Reason", "")) if status.state is JobState.PENDING else None
        if key is None:
            self._never_seen.pop(status.job_id, None)
            return False
        seen = self._never_seen[status.job_id] = self._never_seen.get(status.job_id, 0) + 1
        if seen < self.never_start_polls:
            return False
        asked = f"--cpus-per-task={fields.get('NumCPUs', self.cpus_per_task)}"
        if self.gpus_per_job:
            asked += f" --gres=gpu:{self.gpus_per_job}"
        if self.timeout != "0":
            asked += f" --time={self.timeout}"
        if self.partition:
            asked += f" --partition={self.partition}"
        hint = ""
        if key == "PartitionConfig" and not self.gpus_per_job:
            hint = "; ask fewer CPUs with --slurm_cpus_per_task (sinfo -o '%P %c' lists CPUs per node)"
        elif key == "PartitionConfig":
            hint = "; ask fewer with --slurm_gpus_per_job / --slurm_cpus_per_gpu (sinfo -o '%P %c %G')"
        status.state = JobState.FAILED
        status.reason = (
            f"can never start: SLURM pending reason {fields.get('Reason')}: {NEVER_START_REASONS[key]} "
            f"(asked {asked}){hint}; cancelled"
        )
        return True

    def cancel_argv(self, ids: list[str]) -> list[list[str]]:
        return [["scancel", *ids]]


def _parse_duration(text: str) -> float:
    """SLURM ``[D-]HH:MM:SS`` -> seconds (0.0 when unparseable)."""
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d) if d.isdigit() else 0
    parts = text.split(":")
    if not all(p.isdigit() for p in parts):
        return 0.0
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return float(days * 86400 + seconds)
