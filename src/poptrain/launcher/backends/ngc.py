"""Submit each experiment as one NVIDIA GPU Cloud job (``ngc batch run``).

The job template is a shell-style command line with ``{{placeholders}}``; every placeholder is replaced by
its value *shell-quoted*, and the result is split with ``shlex.split`` into the ``ngc`` argv, so what
``--ngc_print_only`` prints is exactly what runs. A placeholder must stand unquoted in the template (its
value is quoted for you). Placeholders:

=================  ============================================================================
``job_name``       ``<run_name>-<experiment name>`` (NGC job names allow letters, digits, ``-_.``)
``name``           the experiment name;  ``run_name``: the run's name
``instance``       ``--ngc_instance``;  ``image``: ``--ngc_image``
``workspace``      ``--ngc_workspace`` (an NGC workspace id or name)
``workspace_mount`` ``<workspace>:<ngc_workspace_mount>:RW``
``result_dir``     ``--ngc_result_dir`` (NGC's per-job result folder inside the container)
``commandline``    ``cd <ngc_workdir> && [export K=V &&] <cmd>``: what the container runs under bash
``cmd``            the experiment command, shell-quoted
=================  ============================================================================

Submitting reads the job id from ``ngc batch run ... --format_type json`` (key ``id``, or ``job.id``);
``poll`` runs ``ngc batch info <id> --format_type json`` and reads ``jobStatus.status``; ``cancel`` runs
``ngc batch kill <id>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from collections.abc import Sequence
from typing import Any

from poptrain.errors import ConfigError, LaunchError
from poptrain.launcher.backends import (
    Job,
    JobState,
    RenderedJob,
    add_bool_flag,
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
    "job_name",
    "name",
    "run_name",
    "instance",
    "image",
    "workspace",
    "workspace_mount",
    "result_dir",
    "commandline",
    "cmd",
)
"""Valid ``{{placeholders}}`` of an NGC job template."""

IGE_PLACEHOLDERS = ("name", "experiment_cmd")
"""An IsaacGymEnvs run_ngc template (recognised by ``{{ experiment_cmd }}``) may use only these; they may sit
inside quotes (``--commandline "cd /ws && {{ experiment_cmd }}"``): ``experiment_cmd`` becomes
``[export K=V &&] <cmd>`` (shell-quoted; the template does its own ``cd``), ``name`` the experiment name."""

DEFAULT_JOB_TEMPLATE = (
    "ngc batch run --name {{job_name}} --instance {{instance}} --image {{image}} "
    "--workspace {{workspace_mount}} --result {{result_dir}} --commandline {{commandline}} "
    "--format_type json"
)
"""The built-in ``ngc batch run`` template."""

_STATUS_MAP = {
    "CREATED": JobState.PENDING,
    "QUEUED": JobState.PENDING,
    "PENDING_STORAGE_CREATION": JobState.PENDING,
    "STARTING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "PENDING_TERMINATION": JobState.RUNNING,
    "FINISHED_SUCCESS": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "FAILED_RUN_LIMIT_EXCEEDED": JobState.TIMEOUT,
    "KILLED_BY_USER": JobState.CANCELLED,
    "KILLED_BY_ADMIN": JobState.CANCELLED,
    "KILLED_BY_SYSTEM": JobState.FAILED,
    "TASK_LOST": JobState.FAILED,
    "INFINITY_POOL_MISSING": JobState.FAILED,
    "IM_INTERNAL_ERROR": JobState.FAILED,
    "RESOURCE_RELEASED": JobState.COMPLETED,
}


def map_ngc_status(status: str) -> JobState:
    """Our JobState for an NGC jobStatus.status (unknown values count as RUNNING)."""
    return _STATUS_MAP.get(status.upper(), JobState.RUNNING)


def _job_id(payload: Any) -> str:
    if isinstance(payload, dict):
        if "id" in payload:
            return str(payload["id"])
        if isinstance(payload.get("job"), dict) and "id" in payload["job"]:
            return str(payload["job"]["id"])
    if isinstance(payload, list) and payload:
        return _job_id(payload[0])
    return ""


@register_backend
class NgcBackend(CliJobBackend):
    """One ``ngc batch run`` job per experiment."""

    name = "ngc"

    def __init__(
        self,
        instance: str = "dgx1v.32g.1.norm",
        image: str = "nvcr.io/nvidia/pytorch:24.01-py3",
        workspace: str = "",
        workspace_mount: str = "/workspace",
        workdir: str = "/workspace",
        result_dir: str = "/results",
        print_only: bool = False,
        template: str | None = None,
        template_source: str = "--ngc_job_template",
        poll_interval_s: float = 10.0,
        pause_between: float = 0.0,
        wait: bool = False,
    ):
        if pause_between < 0:
            raise ConfigError(f"--pause_between {pause_between}: valid: seconds >= 0")
        super().__init__(
            print_only=print_only, pause_between=pause_between, poll_interval_s=poll_interval_s, wait=wait
        )
        self.template = DEFAULT_JOB_TEMPLATE if template is None else template
        # IsaacGymEnvs' run_ngc template: {{ name }} and {{ experiment_cmd }}, the latter inside the quoted
        # --commandline string the container's shell runs; backslash-newline continues a line
        self.ige_template = "experiment_cmd" in template_placeholders(self.template)
        if self.ige_template:
            unsupported = [p for p in template_placeholders(self.template) if p not in IGE_PLACEHOLDERS]
            if unsupported:
                raise ConfigError(
                    f"{template_source}: unsupported placeholder {{{{ {unsupported[0]} }}}} in an IsaacGymEnvs-style "
                    f"NGC template; valid: {', '.join('{{ ' + p + ' }}' for p in IGE_PLACEHOLDERS)}"
                )
            try:
                self._tokens = shlex.split(self.template.replace("\\\n", " ").strip())
            except ValueError as exc:
                raise ConfigError(f"{template_source}: cannot be split like a shell command: {exc}") from None
            self._init_values(instance, image, workspace, workspace_mount, workdir, result_dir)
            return
        check_template(self.template, PLACEHOLDERS, template_source)
        if "{{" not in self.template or not self.template.strip():
            raise ConfigError(
                f"{template_source}: the template has no placeholders; valid: {', '.join(PLACEHOLDERS)}"
            )
        try:
            # Split once; placeholders fill whole argv elements (so they must not sit inside quotes).
            self._tokens = shlex.split(self.template.strip())
        except ValueError as exc:
            raise ConfigError(f"{template_source}: cannot be split like a shell command: {exc}") from None
        probe = {name: f"<{name} 'x' y>" for name in PLACEHOLDERS}  # must survive as one element each
        as_text = shlex.split(
            fill_template(self.template.strip(), {k: shlex.quote(v) for k, v in probe.items()})
        )
        if as_text != [fill_template(token, probe) for token in self._tokens]:
            raise ConfigError(
                f"{template_source}: a {{{{placeholder}}}} sits inside quotes; valid: unquoted (values are quoted for you)"
            )
        self._init_values(instance, image, workspace, workspace_mount, workdir, result_dir)

    def _init_values(
        self,
        instance: str,
        image: str,
        workspace: str,
        mount: str,
        workdir: str,
        result_dir: str,
    ) -> None:
        self.instance = instance
        self.image = image
        self.workspace = workspace
        self.workspace_mount = mount
        self.workdir = workdir
        self.result_dir = result_dir

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("ngc backend")
        g.add_argument("--ngc_job_template", default=None, help="job template file with {{placeholders}}")
        add_bool_flag(g, "--ngc_print_only", "print the ngc commands; run nothing")
        g.add_argument("--ngc_instance", default="dgx1v.32g.1.norm", help="NGC instance type")
        g.add_argument("--ngc_image", default="nvcr.io/nvidia/pytorch:24.01-py3", help="container image")
        g.add_argument("--ngc_workspace", default="", help="NGC workspace (id or name) mounted read-write")
        g.add_argument("--ngc_workspace_mount", default="/workspace", help="where the workspace is mounted")
        g.add_argument(
            "--ngc_workdir", default="/workspace", help="folder the job cd's into before the command"
        )
        g.add_argument("--ngc_result_dir", default="/results", help="NGC result folder in the container")
        cls.add_wait_flag(g)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NgcBackend:
        template = None
        if args.ngc_job_template:
            template = read_template(args.ngc_job_template, "--ngc_job_template")
        if not args.ngc_print_only and not args.dry_run and not args.ngc_workspace and template is None:
            raise ConfigError(
                "--ngc_workspace is empty; valid: an NGC workspace id or name (or use --ngc_print_only)"
            )
        return cls(
            instance=args.ngc_instance,
            image=args.ngc_image,
            workspace=args.ngc_workspace,
            workspace_mount=args.ngc_workspace_mount,
            workdir=args.ngc_workdir,
            result_dir=args.ngc_result_dir,
            print_only=args.ngc_print_only,
            template=template,
            template_source=f"--ngc_job_template {args.ngc_job_template}",
            pause_between=args.pause_between,
            wait=args.ngc_wait,
        )

    def commandline(self, p: PlannedExperiment) -> str:
        """The shell command the container runs for one experiment."""
        parts = [f"cd {shlex.quote(self.workdir)}"]
        parts += [f"export {k}={shlex.quote(v)}" for k, v in (p.env_vars or {}).items()]
        parts.append(p.cmd)
        return " && ".join(parts)

    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        rendered = []
        for p in planned:
            if (
                self.ige_template
            ):  # as IGE's run_ngc: the experiment name and command replace the placeholders
                exports = [f"export {k}={shlex.quote(v)}" for k, v in (p.env_vars or {}).items()]
                ige = {"name": p.name, "experiment_cmd": " && ".join([*exports, p.cmd])}
                argv = [fill_template(token, ige) for token in self._tokens]
                rendered.append(RenderedJob(planned=p, text=shlex.join(argv), argv=argv))
                continue
            values = {
                "job_name": f"{p.run_name}-{p.name}",
                "name": p.name,
                "run_name": p.run_name,
                "instance": self.instance,
                "image": self.image,
                "workspace": self.workspace,
                "workspace_mount": f"{self.workspace}:{self.workspace_mount}:RW",
                "result_dir": self.result_dir,
                "commandline": self.commandline(p),
                "cmd": p.cmd,
            }
            text = fill_template(self.template.strip(), {k: shlex.quote(v) for k, v in values.items()})
            argv = [fill_template(token, values) for token in self._tokens]
            rendered.append(RenderedJob(planned=p, text=text, argv=argv))
        return rendered

    # ---- submit / observe (the loop is CliJobBackend's) ----
    def parse_job_id(self, stdout: str) -> str:
        try:
            return _job_id(json.loads(stdout))  # --format_type json: {"id": ...} or {"job": {"id": ...}}
        except json.JSONDecodeError:
            return ""

    def observe(self, jobs: list[Job]) -> None:
        for j in jobs:  # `ngc batch info` answers for one job
            out = self.run_cli(["ngc", "batch", "info", j.id, "--format_type", "json"]).stdout
            try:
                info = json.loads(out)
            except json.JSONDecodeError:
                raise LaunchError(f"ngc batch info {j.id} printed no JSON: {out[:200]!r}") from None
            job_status = info.get("jobStatus", {}) if isinstance(info, dict) else {}
            ngc_state = str(job_status.get("status", ""))
            j.status.state = map_ngc_status(ngc_state)
            j.status.reason = ngc_state
            if "exitCode" in job_status:
                j.status.exit_code = int(job_status["exitCode"])

    def cancel_argv(self, ids: list[str]) -> list[list[str]]:
        return [["ngc", "batch", "kill", job_id] for job_id in ids]
