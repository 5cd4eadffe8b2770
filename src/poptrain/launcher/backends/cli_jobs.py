"""The shared half of the backends whose jobs a command-line tool submits: slurm (sbatch) and ngc (ngc batch run).

Every job goes the same way: run its rendered submit command -> parse the job id from what it printed -> ask
the cluster for the states of the unfinished jobs at each poll -> run a cancel command on their ids. A subclass
keeps only what differs: ``render`` and its flags, :meth:`~CliJobBackend.parse_job_id`,
:meth:`~CliJobBackend.observe` (the status command and how to read it) and :meth:`~CliJobBackend.cancel_argv`,
plus optional hooks around submission (:meth:`~CliJobBackend.prepare`, :meth:`~CliJobBackend.after_submit`).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Sequence

from poptrain.errors import LaunchError
from poptrain.launcher.backends import (
    Backend,
    Job,
    JobState,
    JobStatus,
    RenderedJob,
    last_log_line,
    require_executable,
)

log = logging.getLogger(__name__)


class CliJobBackend(Backend):
    """Jobs submitted, observed and cancelled through a cluster's command-line tools; they outlive the launcher."""

    attached = False

    def __init__(
        self,
        *,
        print_only: bool,
        pause_between: float,
        poll_interval_s: float,
        stop_on_error: bool = False,
        wait: bool = False,
        cwd: str | None = None,
    ):
        self._print_only = print_only
        self.pause_between = pause_between
        self.poll_interval_s = poll_interval_s
        self.stop_on_error = stop_on_error
        self.asked_to_wait = wait
        self.cwd = cwd
        """The working directory of the submit command (None: the launcher's)."""
        self._jobs: list[Job] = []

    @property
    def print_only(self) -> bool:
        return self._print_only

    @property
    def print_only_flag(self) -> str:
        """The flag that renders without the cluster's CLI, named when the CLI is missing."""
        return f"--{self.name}_print_only"

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    # ---- what a subclass says ----
    def parse_job_id(self, stdout: str) -> str:
        """The job id in the output of a successful submit command ('' when there is none)."""
        raise NotImplementedError

    def observe(self, jobs: list[Job]) -> None:
        """Ask the cluster for the states of these submitted, unfinished jobs and update their statuses."""
        raise NotImplementedError

    def cancel_argv(self, ids: list[str]) -> list[list[str]]:
        """The commands that cancel the jobs with these ids (one for all, or one per job)."""
        raise NotImplementedError

    def prepare(self, rendered: Sequence[RenderedJob]) -> None:
        """Before the first submission (slurm writes its scripts here)."""

    def submit_failure(self, r: RenderedJob, proc: subprocess.CompletedProcess[str]) -> str:
        """Why submitting ``r`` failed, from the submit command's exit code and output."""
        said = (proc.stderr or proc.stdout).strip()[:500]
        return f"{r.argv[0]} failed (exit {proc.returncode}): {said}"

    def log_path(self, job: Job) -> str | None:
        """A log file on this machine whose last line the live table shows (None: the job runs elsewhere)."""
        return None

    def after_submit(self, jobs: list[Job], errors: list[str]) -> None:
        """After the last submission: with ``stop_on_error`` the first error is a LaunchError, else logged."""
        if errors and self.stop_on_error:
            submitted = [j.name for j in self._jobs if j.id]
            raise LaunchError(
                f"{errors[0]}\nstopped (--{self.name}_stop_on_error); submitted before the error: "
                f"{submitted or 'none'}{self.cancel_hint() if submitted else ''}"
            )
        for message in errors:
            log.error("%s", message)

    def cancel_hint(self) -> str:
        """Appended to the stop-on-error message when jobs were submitted before the error."""
        return ""

    # ---- the shared loop ----
    def run_cli(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a status / cancel command; LaunchError naming it when it is missing or fails."""
        program = require_executable(argv[0], self.print_only_flag)
        proc = subprocess.run([program, *argv[1:]], capture_output=True, text=True)
        if proc.returncode != 0:
            raise LaunchError(f"{shlex.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return proc

    def submit(self, rendered: Sequence[RenderedJob]) -> None:
        # every submit program is found before anything is written or submitted
        programs = {r.argv[0]: require_executable(r.argv[0], self.print_only_flag) for r in rendered}
        self.prepare(rendered)
        new: list[Job] = []
        errors: list[str] = []
        for i, r in enumerate(rendered):
            if i and self.pause_between > 0:  # --pause_between: spread the submissions (IGE's run_slurm does)
                time.sleep(self.pause_between)
            job = Job(backend=self, rendered=r, status=JobStatus(name=r.name))
            self._jobs.append(job)
            new.append(job)
            proc = subprocess.run(
                [programs[r.argv[0]], *r.argv[1:]], capture_output=True, text=True, cwd=self.cwd
            )
            job_id = self.parse_job_id(proc.stdout) if proc.returncode == 0 else ""
            if job_id:
                job.status.job_id = job_id
                log.info("submitted %s as %s job %s", r.name, self.name, job_id)
                continue
            job.status.state = JobState.FAILED
            job.status.reason = self.submit_failure(r, proc)
            errors.append(f"{r.name}: {job.status.reason}")
            if self.stop_on_error:
                for rest in rendered[i + 1 :]:
                    status = JobStatus(
                        name=rest.name,
                        state=JobState.CANCELLED,
                        reason=f"not submitted (--{self.name}_stop_on_error)",
                    )
                    self._jobs.append(Job(backend=self, rendered=rest, status=status))
                break
        self.after_submit(new, errors)

    def poll(self) -> list[JobStatus]:
        active = [j for j in self._jobs if j.id and not j.done]
        if active:
            self.observe(active)
        for j in self._jobs:
            path = self.log_path(j)
            if path is not None:
                j.status.last_line = last_log_line(path)
        return [j.snapshot() for j in self._jobs]

    def cancel(self) -> None:
        self.cancel_jobs(self._jobs)

    def cancel_jobs(self, jobs: Sequence[Job]) -> None:
        ids = [j.id for j in jobs if j.id and not j.done]
        if ids:
            for argv in self.cancel_argv(ids):
                self.run_cli(argv)
