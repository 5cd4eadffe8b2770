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
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import (
    LOG_NAME,
    Backend,
    JobState,
    JobStatus,
    RenderedJob,
    atomic_write,
    check_template,
    fill_template,
    last_log_line,
    read_template,
    require_executable,
)
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

# scontrol JobState -> ours. Anything not listed is reported as RUNNING-ish by _map_state's fallback.
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


@dataclass
class _Submitted:
    rendered: RenderedJob
    status: JobStatus


class SlurmBackend(Backend):
    """One sbatch job per experiment."""

    name = "slurm"
    attached = False

    def __init__(
        self,
        workdir: str = "slurm_workdir",
        gpus_per_job: int = 1,
        cpus_per_gpu: int = 4,
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
    ):
        problems = []
        if gpus_per_job < 0:
            problems.append(f"--slurm_gpus_per_job {gpus_per_job}: valid: an integer >= 0 (0 = no GPU)")
        if cpus_per_gpu < 1:
            problems.append(f"--slurm_cpus_per_gpu {cpus_per_gpu}: valid: an integer >= 1")
        if not re.fullmatch(r"\d+|\d+(:\d+){1,2}|\d+-\d+(:\d+){0,2}", timeout or "0"):
            problems.append(
                f"--slurm_timeout {timeout!r}: valid: 0 (no limit), minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]"
            )
        if mem and not re.fullmatch(r"\d+[KMGT]?", mem):
            problems.append(f"--slurm_mem {mem!r}: valid: a number with an optional K/M/G/T suffix, e.g. 8G")
        if partition and not re.fullmatch(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*", partition):
            # a newline here ended the #SBATCH line and ran the rest as a shell command in the job
            problems.append(
                f"--slurm_partition {partition!r}: valid: partition names of letters, digits, _ . - "
                "(comma-separated for several)"
            )
        if problems:
            raise ConfigError("; ".join(problems))
        self.template = DEFAULT_SBATCH_TEMPLATE if template is None else template
        check_template(self.template, PLACEHOLDERS, template_source)
        self.workdir = os.path.abspath(workdir)
        self.gpus_per_job = gpus_per_job
        self.cpus_per_gpu = cpus_per_gpu
        self.partition = partition
        self.timeout = timeout or "0"
        self.mem = mem
        self.requeue = requeue
        self._print_only = print_only
        self.stop_on_error = stop_on_error
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.poll_interval_s = poll_interval_s
        self._jobs: list[_Submitted] = []

    @property
    def print_only(self) -> bool:
        return self._print_only

    @property
    def cpus_per_task(self) -> int:
        """CPUs per job: gpus x cpus_per_gpu, or cpus_per_gpu alone for a CPU-only job."""
        return self.cpus_per_gpu * max(1, self.gpus_per_job)

    # ---- CLI ----
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("slurm backend")
        g.add_argument(
            "--slurm_workdir", default="slurm_workdir", help="where sbatch scripts, jobs.json, scancel.sh go"
        )
        g.add_argument("--slurm_gpus_per_job", type=int, default=1, help="GPUs per job (0 = no GPU request)")
        g.add_argument("--slurm_cpus_per_gpu", type=int, default=4, help="CPUs per GPU (per job when 0 GPUs)")
        g.add_argument("--slurm_partition", default="", help="partition (default: the cluster's default)")
        g.add_argument("--slurm_timeout", default="0", help="time limit, e.g. 90, 1:30:00, 2-00 (0 = none)")
        g.add_argument("--slurm_mem", default="", help="memory per job, e.g. 16G (default: cluster default)")
        g.add_argument(
            "--slurm_requeue", action="store_true", help="requeue jobs on preemption / node failure"
        )
        g.add_argument(
            "--slurm_print_only", action="store_true", help="print the sbatch scripts; submit nothing"
        )
        g.add_argument(
            "--slurm_stop_on_error", action="store_true", help="stop submitting at the first sbatch error"
        )
        g.add_argument(
            "--slurm_sbatch_template", default=None, help="sbatch template file with {{placeholders}}"
        )
        g.add_argument("--slurm_wait", action="store_true", help="stay and show job states until all finish")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SlurmBackend:
        template = None
        if args.slurm_sbatch_template:
            template = read_template(args.slurm_sbatch_template, "--slurm_sbatch_template")
        return cls(
            workdir=args.slurm_workdir,
            gpus_per_job=args.slurm_gpus_per_job,
            cpus_per_gpu=args.slurm_cpus_per_gpu,
            partition=args.slurm_partition,
            timeout=args.slurm_timeout,
            mem=args.slurm_mem,
            requeue=args.slurm_requeue,
            print_only=args.slurm_print_only,
            stop_on_error=args.slurm_stop_on_error,
            template=template,
            template_source=f"--slurm_sbatch_template {args.slurm_sbatch_template}",
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
            rendered.append(
                RenderedJob(
                    planned=p,
                    text=fill_template(self.template, values),
                    argv=["sbatch", "--parsable", script_path],
                    path=script_path,
                )
            )
        return rendered

    # ---- submit / observe ----
    def submit(self, rendered: Sequence[RenderedJob]) -> None:
        sbatch = require_executable("sbatch", "--slurm_print_only")
        errors = []
        for r in rendered:
            assert r.path is not None
            atomic_write(r.path, r.text, mode=0o755)
            os.makedirs(r.planned.output_dir, exist_ok=True)  # sbatch does not create the --output folder
        for i, r in enumerate(rendered):
            status = JobStatus(name=r.name)
            self._jobs.append(_Submitted(rendered=r, status=status))
            proc = subprocess.run([sbatch, *r.argv[1:]], capture_output=True, text=True, cwd=self.cwd)
            if proc.returncode == 0 and proc.stdout.strip():
                status.job_id = proc.stdout.strip().split(";")[0]
                log.info("submitted %s as job %s", r.name, status.job_id)
                continue
            message = f"sbatch {r.path} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            status.state = JobState.FAILED
            status.reason = message
            errors.append(message)
            if self.stop_on_error:
                for rest in rendered[i + 1 :]:
                    self._jobs.append(
                        _Submitted(
                            rest,
                            JobStatus(
                                name=rest.name,
                                state=JobState.CANCELLED,
                                reason="not submitted (--slurm_stop_on_error)",
                            ),
                        )
                    )
                break
        self._write_records()
        if errors and self.stop_on_error:
            submitted = [j.status.name for j in self._jobs if j.status.job_id]
            raise LaunchError(
                f"{errors[0]}\nstopped (--slurm_stop_on_error); submitted before the error: {submitted or 'none'}"
                f"{'; cancel them with ' + self.scancel_path if submitted else ''}"
            )
        for message in errors:
            log.error("%s", message)

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
        ids = {j.status.name: j.status.job_id for j in self._jobs if j.status.job_id}
        atomic_write(self.jobs_path, json.dumps(ids, indent=2) + "\n")
        body = "#!/bin/sh\n# Cancels the jobs of this run (written by poptrain-launch).\n"
        if ids:
            body += "exec scancel " + " ".join(ids.values()) + "\n"
        atomic_write(self.scancel_path, body, mode=0o755)

    def poll(self) -> list[JobStatus]:
        ids = [j.status.job_id for j in self._jobs if j.status.job_id and not j.status.state.terminal]
        if ids:
            scontrol = require_executable("scontrol", "--slurm_print_only")
            proc = subprocess.run([scontrol, "show", "job", "-o"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise LaunchError(f"scontrol show job failed (exit {proc.returncode}): {proc.stderr.strip()}")
            jobs = parse_scontrol_jobs(proc.stdout)
            for j in self._jobs:
                fields = jobs.get(j.status.job_id)
                if fields is None or j.status.state.terminal:
                    continue
                self._update(j.status, fields)
        for j in self._jobs:
            if j.rendered.planned is not None:
                j.status.last_line = last_log_line(os.path.join(j.rendered.planned.output_dir, LOG_NAME))
        return [JobStatus(**vars(j.status)) for j in self._jobs]

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

    def cancel(self) -> None:
        ids = [j.status.job_id for j in self._jobs if j.status.job_id and not j.status.state.terminal]
        if not ids:
            return
        scancel = require_executable("scancel", "--slurm_print_only")
        proc = subprocess.run([scancel, *ids], capture_output=True, text=True)
        if proc.returncode != 0:
            raise LaunchError(
                f"scancel {' '.join(ids)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )


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
