"""The launcher CLI: import a module's RUN_DESCRIPTION and run it on a backend.

    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend processes --max_parallel 2
    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend slurm --slurm_gpus_per_job 0 \\
        --slurm_wait
    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend ngc --ngc_print_only
    poptrain-launch --run poptrain.experiments.cartpole_pbt --backend ray --ray_address HEAD:6379 --ray_wait

Exit codes: 0 all experiments succeeded (or were submitted / printed); 1 an experiment failed or could not
be submitted, or the --run module could not be imported / has no RUN_DESCRIPTION (LaunchError); 2 bad
arguments (ConfigError); 128+N stopped by signal N (every child process group is stopped first).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import Any

from poptrain.errors import ConfigError, LaunchError, PoptrainError
from poptrain.launcher.backends import (
    Backend,
    JobState,
    JobStatus,
    add_bool_flag,
    backend_classes,
    backend_names,
)
from poptrain.launcher.run_description import RunDescription

log = logging.getLogger(__name__)


# ---- arguments --------------------------------------------------------------------------------------
def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        required=True,
        help="module defining RUN_DESCRIPTION, e.g. poptrain.experiments.cartpole_sweep",
    )
    parser.add_argument(
        "--backend", default="processes", choices=backend_names(), help="where to run (default: processes)"
    )
    parser.add_argument("--train_dir", default="./train_dir", help="root of every experiment's output")
    parser.add_argument(
        "--pause_between",
        type=float,
        default=1.0,
        help="seconds between two launches / submissions (every backend)",
    )
    parser.add_argument("--experiment_suffix", default="", help="appended to every experiment folder name")
    add_bool_flag(parser, "--dry_run", "list what would run; start and write nothing")


def launcher_argparser(args: Sequence[str]) -> argparse.ArgumentParser:
    """The full parser: common arguments plus those of the backend that ``args`` selects."""
    # A partial parse only to find the backend; every error (a missing --run, an unknown backend) is
    # reported by the full parser below, once.
    partial = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    partial.add_argument("--backend", default="processes")
    known, _ = partial.parse_known_args(args)
    backend = known.backend if known.backend in backend_names() else "processes"
    parser = argparse.ArgumentParser(
        prog="poptrain-launch",
        description="Run every experiment of a RUN_DESCRIPTION module on a backend.",
        allow_abbrev=False,
    )
    _common_args(parser)
    backend_classes()[backend].add_args(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; an unknown flag is an error listing the valid ones for the chosen backend."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = launcher_argparser(args_list)
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        valid = sorted(
            opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")
        )
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (backend {args.backend}); valid: {' '.join(valid)}"
        )
    return args


def load_run_description(module_name: str) -> RunDescription:
    """Import ``module_name`` and return its RUN_DESCRIPTION; LaunchError saying what is wrong."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LaunchError(
                f"--run {module_name}: no such module ({exc}); valid: an importable module path"
            ) from None
        traceback.print_exc()
        raise LaunchError(f"--run {module_name}: importing it failed (traceback above)") from None
    except Exception:
        traceback.print_exc()
        raise LaunchError(f"--run {module_name}: importing it failed (traceback above)") from None
    description = getattr(module, "RUN_DESCRIPTION", None)
    if description is None:
        raise LaunchError(
            f"--run {module_name}: the module defines no RUN_DESCRIPTION; define RUN_DESCRIPTION = RunDescription(...)"
        )
    if not isinstance(description, RunDescription):
        raise LaunchError(
            f"--run {module_name}: RUN_DESCRIPTION is a {type(description).__name__}; valid: a RunDescription"
        )
    return description


# ---- terminal display -------------------------------------------------------------------------------
class StatusDisplay:
    """A live rich table on a terminal; one plain line per state change otherwise."""

    def __init__(self, stream: Any = None, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._seen: dict[str, tuple[JobState, int]] = {}
        self._live: Any = None

    def __enter__(self) -> StatusDisplay:
        if self.live:
            from rich.live import Live

            self._live = Live(self._table([]), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    @staticmethod
    def _table(statuses: list[JobStatus]) -> Any:
        from rich.table import Table
        from rich.text import Text

        from poptrain.untrusted import shown

        table = Table(title="poptrain-launch", expand=False)
        for column in ("experiment", "state", "runtime", "restarts", "last line"):
            table.add_column(column, overflow="fold" if column == "last line" else "ellipsis")
        colours = {
            JobState.COMPLETED: "green",
            JobState.FAILED: "red",
            JobState.TIMEOUT: "red",
            JobState.CANCELLED: "yellow",
            JobState.RUNNING: "cyan",
        }
        for s in statuses:
            colour = colours.get(s.state, "white")
            # name and log line are a child's output, not markup: "could not read [/data/x.yaml]" raised
            # MarkupError in the launcher's main thread and left the children unsupervised
            table.add_row(
                Text(shown(s.name, 120)),
                Text(s.state.value, style=colour),
                f"{s.runtime_s:.0f}s",
                str(s.restarts),
                Text(shown(s.last_line, 80)),
            )
        return table

    def update(self, statuses: list[JobStatus]) -> None:
        """Show the current statuses."""
        if self._live is not None:
            self._live.update(self._table(statuses))
            return
        for s in statuses:
            key = (s.state, s.restarts)
            if self._seen.get(s.name) == key:
                continue
            self._seen[s.name] = key
            detail = f" ({s.reason})" if s.reason and s.state is not JobState.RUNNING else ""
            job = f" [{s.job_id}]" if s.job_id else ""
            print(f"[launcher] {s.name}{job}: {s.state.value}{detail}", file=self.stream, flush=True)


def summarize(statuses: list[JobStatus]) -> tuple[int, str]:
    """The exit code (0 when every job completed) and a one-paragraph summary naming the failures."""
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state.value] = counts.get(s.state.value, 0) + 1
    text = "summary: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    bad = [s for s in statuses if s.state is not JobState.COMPLETED]
    for s in bad:
        text += f"\n  {s.state.value.upper()}: {s.name}" + (f" — {s.reason}" if s.reason else "")
    return (1 if bad else 0), text


class _Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def watch(
    backend: Backend, display: StatusDisplay, stop_jobs_on_signal: bool
) -> tuple[list[JobStatus], int | None]:
    """Wait for every job, showing progress; on SIGINT/SIGTERM cancel (when asked) and return the signal."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _raise_stop)
        except ValueError:  # not the main thread
            pass
    try:
        with display:
            try:
                return backend.wait(on_update=display.update), None
            except _Stop as stop:
                # Ignore further signals while the children are being stopped.
                for sig in previous:
                    signal.signal(sig, signal.SIG_IGN)
                print(f"[launcher] got signal {stop.signum}; stopping", file=sys.stderr, flush=True)
                if stop_jobs_on_signal:
                    backend.cancel()
                statuses = backend.poll()
                display.update(statuses)
                return statuses, stop.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---- main -------------------------------------------------------------------------------------------
def exit_code(error: PoptrainError) -> int:
    """2 for bad arguments (a ConfigError), 1 for anything else that stopped the launch."""
    return 2 if isinstance(error, ConfigError) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[launcher] %(message)s")
    try:
        description = load_run_description(args.run)
        description.experiment_suffix = args.experiment_suffix
        backend = backend_classes()[args.backend].from_args(args)
        print_only = args.dry_run or backend.print_only
        train_dir = os.path.abspath(args.train_dir)
        planned = list(description.plan(train_dir, makedirs=not print_only))
        rendered = backend.render(planned)
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)

    if print_only:
        for r in rendered:
            print(f"# {r.name}" + (f" -> {r.path}" if r.path else ""))
            print(r.text.rstrip("\n"))
        print(
            f"# {len(rendered)} experiment(s) of run {description.run_name}; nothing started ({args.backend})"
        )
        return 0

    started = time.monotonic()
    try:
        backend.submit(rendered)
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not backend.watch:
        jobs = backend.jobs()
        for job in jobs:
            print(
                f"[launcher] {job.name}: "
                + (f"job {job.id}" if job.id else f"NOT SUBMITTED — {job.status.reason}")
            )
        failed = [job for job in jobs if not job.id]
        if failed:
            print(f"error: {len(failed)} of {len(jobs)} experiment(s) were not submitted", file=sys.stderr)
        return 1 if failed else 0

    try:
        statuses, signum = watch(
            backend, StatusDisplay(), stop_jobs_on_signal=backend.attached or backend.owns_jobs
        )
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    code, text = summarize(statuses)
    print(f"{text}\n(wall time {time.monotonic() - started:.1f} s)", file=sys.stderr if code else sys.stdout)
    if signum is not None:
        return 128 + signum
    return code


def cli() -> None:
    """Console-script entry (``poptrain-launch``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
