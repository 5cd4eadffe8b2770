"""The ``poptrain`` console script (also ``python -m poptrain``).

    poptrain train [HYDRA_OVERRIDES...]          train one policy (forwards to python -m poptrain.train)
    poptrain play PATH [HYDRA_OVERRIDES...]      play a run's exported best policy with its own config,
                                                 or a .pth checkpoint
    poptrain launch [LAUNCHER_ARGS...]           start a population (poptrain.launcher.run)
    poptrain status PATH [--json] [--watch]      leaderboard of a PBT workspace / run dir
    poptrain report PATH [--out DIR]             report.html + PNG figures
    poptrain replay PATH [--member K] [--print]  retrain along member K's discovered schedule

Bad input prints one ``error: ...`` line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poptrain.errors import ConfigError, PoptrainError, WorkspaceError
from poptrain.pbt.params import STALE_AFTER_S

log = logging.getLogger(__name__)


# ---- forwarding ------------------------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    """Run a child command in the foreground; its exit code."""
    print(f"$ {shlex.join(argv)}", file=sys.stderr, flush=True)
    with subprocess.Popen(argv) as proc:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the child got the same SIGINT: let it finish cleanly
            return proc.wait()


def train_argv(overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "poptrain.train", *overrides]


def cmd_train(args: argparse.Namespace) -> int:
    return _run(train_argv(args.overrides))


def play_argv(path: str, extra: Sequence[str]) -> list[str]:
    """The ``poptrain.train`` command that plays PATH (run dir, workspace, or .pth) with its own config."""
    from poptrain.overrides import config_overrides, merge_overrides, render

    p = Path(path)
    if p.is_file():
        if p.suffix != ".pth":
            raise ConfigError(
                f"{path!r} is a file but not a .pth checkpoint; expected a run dir, a PBT "
                "workspace or a .pth file"
            )
        checkpoint, config_file = p, p.parent / "config.yaml"
    else:
        from poptrain.pbt.layout import Layout
        from poptrain.report.locate import find_workspace

        layout = Layout(find_workspace(p))
        checkpoint, config_file = layout.best_checkpoint, layout.best_config
        if not checkpoint.is_file():
            raise WorkspaceError(
                f"no exported best policy at {str(checkpoint)!r} (the population has not "
                "finished or exported yet); play one member's checkpoint with "
                "`poptrain play <workspace>/<NNN>/<NNNNNN>.pth task=...`"
            )
    overrides: list[str] = []
    if config_file.is_file():
        import yaml

        try:
            saved = yaml.safe_load(config_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {str(config_file)!r}: {exc}") from None
        if not isinstance(saved, dict):
            raise ConfigError(f"{str(config_file)!r} is not a config mapping")
        overrides = config_overrides(saved)
    else:
        log.warning(
            "no config.yaml beside %s: playing with the default config plus your overrides", checkpoint
        )
    overrides = merge_overrides([*overrides, "test=True", render("checkpoint", str(checkpoint))], list(extra))
    return train_argv(overrides)


def cmd_play(args: argparse.Namespace) -> int:
    return _run(play_argv(args.path, args.overrides))


def cmd_launch(args: argparse.Namespace) -> int:
    from poptrain.launcher.run import main as launcher_main

    try:
        code = launcher_main(list(args.args))
    except SystemExit as exc:  # argparse inside the launcher exits on --help / bad flags
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return int(code or 0)


# ---- status / report / replay ------------------------------------------------------------------------
def _load(path: str, stale_after_s: float) -> Any:
    from poptrain.report.locate import find_workspace
    from poptrain.report.population import load_population

    return load_population(find_workspace(path), stale_after_s=stale_after_s)


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from poptrain.report.status import render, status_json

    view = _load(args.path, args.stale_after)
    if args.json:
        print(json.dumps(status_json(view), indent=2, allow_nan=False))
        return 0
    console = Console()
    if not console.is_terminal:  # piped / captured: never truncate the table to 80 columns
        console = Console(width=200)
    if not args.watch:
        console.print(render(view))
        return 0
    from rich.live import Live

    try:
        with Live(render(view), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(_load(args.path, args.stale_after)))
    except KeyboardInterrupt:
        return 0


def cmd_report(args: argparse.Namespace) -> int:
    from poptrain.report.html import write_report

    view = _load(args.path, args.stale_after)
    out = Path(args.out) if args.out else view.root.parent / "pbt_report"
    files = write_report(view, out)
    for note in view.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {files.html} ({', '.join(p.name for p in files.pngs)})")
    return 0


def _pick_member(view: Any, member: int | None) -> int:
    have = sorted(view.histories)
    if member is None:
        if (
            view.best_meta
            and isinstance(view.best_meta.get("member"), int)
            and view.best_meta["member"] in view.histories
        ):
            return int(view.best_meta["member"])
        best = view.best()  # pbt.ranking's order, as in `poptrain status`
        if best is None:
            raise WorkspaceError(
                f"no member of {str(view.root)!r} has a finite objective yet; pass --member K "
                f"(members with metadata: {have or 'none'})"
            )
        return best
    if member not in view.histories:
        size = view.num_policies if view.num_policies is not None else len(view.member_dirs)
        raise WorkspaceError(
            f"--member {member} is out of range: the population has members 0..{size - 1}, "
            f"with metadata for {have or 'none'}"
        )
    return member


def print_schedule(schedule: Any) -> None:
    from poptrain.report.schedule import format_value
    from poptrain.untrusted import shown as one_line

    print(f"member {schedule.member}: weight lineage (oldest first), {schedule.total_frames} replay frames")
    for seg in schedule.segments:
        via = (
            ""
            if seg.via is None
            else (f"  (copied from member {seg.via.source} iteration {seg.via.source_iteration})")
        )
        print(
            f"  member {seg.member:3d}: own frames {seg.start_frames}..{seg.end_frames} -> replay frames "
            f"{seg.replay_start}..{seg.replay_start + seg.length}{via}"
        )
    print("schedule (replay frames: params that change):")
    previous = None
    for point in schedule.points:
        changed = point.changed_from(previous)
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(changed.items()))
        shown = one_line(shown, 2000)  # recorded values are workspace text: no terminal escapes
        print(
            f"  {point.frames:>12d}  {shown or '(no change)'}   [{point.reason}, member {point.member} "
            f"at its frame {point.member_frames}]"
        )
        previous = point
    for note in schedule.notes:
        print(f"note: {note}")


def cmd_replay(args: argparse.Namespace) -> int:
    from poptrain import replay
    from poptrain.report.schedule import build_schedule
    from poptrain.untrusted import safe_overrides

    view = _load(args.path, args.stale_after)
    for note in view.notes:
        print(f"note: {note}", file=sys.stderr)
    member = _pick_member(view, args.member)
    schedule = build_schedule(member, view.histories, view.lineage)
    meta = view.latest(member)
    keys = sorted({k for p in schedule.points for k in p.params}, key=str)
    # recorded overrides and params are workspace content: only config keys may become argv
    recorded = safe_overrides(meta.overrides, f"replay: member {member}'s recorded overrides")
    base = replay.base_overrides(recorded, keys)
    schedule = replay.vet_schedule(schedule, base)
    print_schedule(schedule)
    if args.print:
        return 0
    first = schedule.points[0].params if schedule.points else {}
    from poptrain.overrides import merge_overrides, render

    fpe = replay.frames_per_epoch(
        merge_overrides(base, [render(k, v) for k, v in first.items()] + list(args.overrides))
    )
    plan = replay.plan_segments(schedule, fpe, base)
    for line in replay.describe(plan):
        print(line)
    for note in plan.notes:
        print(f"note: {note}")
    out = Path(args.out) if args.out else view.root.parent / f"replay_{member:03d}"
    final = replay.run_replay(plan, out, f"replay_{member:03d}", args.overrides)
    print(f"replay: member={member} segments={len(plan.segments)} checkpoint={final}")
    return 0


# ---- parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poptrain", description="Population-Based Training for RL.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train", help="train one policy (Hydra overrides, as python -m poptrain.train)", add_help=False
    )
    p.add_argument("overrides", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("play", help="play a run's exported best policy (or a .pth) with its own config")
    p.add_argument("path", help="run dir, PBT workspace, or .pth checkpoint")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides (win over the saved config)")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("launch", help="start a population (poptrain.launcher.run)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_launch)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help="a PBT workspace, or a run dir holding exactly one")
        p.add_argument(
            "--stale-after",
            type=float,
            default=STALE_AFTER_S,
            metavar="S",
            help="seconds without new metadata before a member counts as stale, at least; a member "
            f"whose intervals take longer gets 3x its own interval (default {STALE_AFTER_S:g}, "
            "the engine's pbt.stale_after_s)",
        )

    p = sub.add_parser("status", help="leaderboard of a population")
    common(p)
    p.add_argument("--json", action="store_true", help="print the status as one JSON object")
    p.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    p.add_argument("--interval", type=float, default=5.0, metavar="S", help="--watch refresh period (s)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="write report.html and its PNG figures")
    common(p)
    p.add_argument("--out", help="output folder (default: pbt_report beside the workspace)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("replay", help="retrain a fresh policy along a member's discovered schedule")
    common(p)
    p.add_argument("--member", type=int, help="member index (default: the best)")
    p.add_argument("--print", action="store_true", help="print the schedule only")
    p.add_argument("--out", help="train_dir of the replay (default: replay_KKK beside the workspace)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every segment")
    p.set_defaults(func=cmd_replay)
    return parser


FORWARDED = {"train": cmd_train, "launch": cmd_launch}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``poptrain`` console script; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:  # everything after the command belongs to the child, options included
        args = argparse.Namespace(func=FORWARDED[argv[0]], overrides=argv[1:], args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
