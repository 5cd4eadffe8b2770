"""Retrain one fresh policy along a member's discovered hyperparameter schedule.

The replay is a chain of ordinary training runs (``python -m poptrain.train``, one subprocess per
segment of constant params): segment i runs with its params as Hydra overrides, resumes from segment
i-1's last checkpoint (rl_games restores weights, optimizer, epoch and frame counters) and stops at
``max_iterations`` = the epoch where the next change point falls. Frames per epoch = num_envs x
horizon_length of the member's config, so a change recorded at frame F happens at epoch round(F / that).
Changes closer together than one epoch merge (the later params win; noted in the plan).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poptrain.errors import ConfigError, PoptrainError
from poptrain.overrides import compose, flatten, merge_overrides, override_key, render
from poptrain.report.schedule import Schedule, format_value
from poptrain.untrusted import refusal, safe_params

log = logging.getLogger(__name__)

#: overrides of the member's own command line that a replay replaces or must not inherit
DROP_KEYS = (
    "pbt",
    "checkpoint",
    "test",
    "train_dir",
    "experiment",
    "max_iterations",
    "wandb_activate",
    "wandb_name",
    "wandb_group",
    "wandb_project",
    "wandb_entity",
    "hydra",
)
_CHECKPOINT_LINE = re.compile(r"^train: .*checkpoint=(?P<path>\S.*)$")


@dataclass(frozen=True)
class ReplaySegment:
    """One training run of the replay chain."""

    index: int  #: 0-based position in the chain
    start_frames: int  #: replay frames where these params start (as recorded)
    end_frames: int  #: replay frames where the next change is recorded (total frames for the last)
    params: dict[str, Any]  #: every mutable param's value in this segment
    start_epoch: int  #: epochs already trained when the segment starts
    max_iterations: int  #: rl_games max_epochs for this run (cumulative)

    @property
    def epochs(self) -> int:
        return self.max_iterations - self.start_epoch


@dataclass(frozen=True)
class ReplayPlan:
    """The segments plus what they were derived from."""

    member: int  #: the member whose lineage is replayed
    frames_per_epoch: int  #: num_envs x horizon_length
    segments: list[ReplaySegment]  #: in order
    #: the member's own overrides minus PBT/output keys and mutable params (but one added with ``+``/``++``)
    base_overrides: list[str]
    notes: list[str] = field(default_factory=list)  #: merged changes and other approximations


def base_overrides(member_overrides: Sequence[str], mutable_keys: Sequence[str]) -> list[str]:
    """The member's command-line overrides without PBT, output, checkpoint and mutable-param keys.

    A mutable param the member added (``+task.env.extra=1``) stays: the defaults lack its key, so the replay's
    config needs it to compose (and ``vet_schedule`` to know the key); each segment's value replaces it and keeps
    its prefix (``merge_overrides``)."""
    mutable = set(mutable_keys)
    out = []
    for item in member_overrides:
        key = override_key(item)
        added = item.startswith("+")
        if (key in mutable and not added) or key.split(".", 1)[0] in DROP_KEYS or key.startswith("hydra/"):
            continue
        out.append(item)
    return out


def vet_schedule(schedule: Schedule, base: Sequence[str]) -> Schedule:
    """``schedule`` with only the param keys that may become overrides: keys that pass ``untrusted.refusal`` and
    exist in the config ``base`` composes. Lineage lines and metadata are workspace content: a key
    ``--experimental-rerun`` made ``python -m poptrain.train`` unpickle a file. Refused keys: one warning."""
    keys = sorted({k for p in schedule.points for k in p.params}, key=str)
    known = flatten(compose(list(base))[0])
    allowed = [k for k in keys if not refusal(k) and k in known]
    kept = safe_params(dict.fromkeys(keys), allowed, f"replay of member {schedule.member}: recorded params")
    points = [
        dataclasses.replace(p, params={k: v for k, v in p.params.items() if k in kept})
        for p in schedule.points
    ]
    return dataclasses.replace(schedule, points=points)


def plan_segments(schedule: Schedule, frames_per_epoch: int, base: Sequence[str] = ()) -> ReplayPlan:
    """Cut the schedule into training runs at epoch boundaries (pure)."""
    if frames_per_epoch <= 0:
        raise ConfigError(f"frames per epoch must be positive, got {frames_per_epoch}")
    notes: list[str] = []
    total_epochs = max(1, math.ceil(schedule.total_frames / frames_per_epoch))
    segments: list[ReplaySegment] = []
    points = schedule.points or []
    start_epoch = 0
    for i, point in enumerate(points):
        end_frames = points[i + 1].frames if i + 1 < len(points) else schedule.total_frames
        end_epoch = (
            total_epochs if i + 1 == len(points) else min(total_epochs, round(end_frames / frames_per_epoch))
        )
        if end_epoch <= start_epoch:
            notes.append(
                f"params from replay frame {point.frames} last less than one epoch "
                f"({frames_per_epoch} frames); merged into the next change"
            )
            continue
        segments.append(
            ReplaySegment(len(segments), point.frames, end_frames, dict(point.params), start_epoch, end_epoch)
        )
        start_epoch = end_epoch
    if points and not segments:
        last = points[-1]
        segments.append(
            ReplaySegment(0, last.frames, schedule.total_frames, dict(last.params), 0, total_epochs)
        )
    return ReplayPlan(schedule.member, frames_per_epoch, segments, list(base), notes)


def frames_per_epoch(overrides: Sequence[str]) -> int:
    """num_actors x horizon_length of the config these overrides compose."""
    cfg, _raw = compose(overrides)
    conf = cfg["train"]["params"]["config"]
    try:
        return int(conf["num_actors"]) * int(conf["horizon_length"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot tell frames per epoch from the member's config ({exc})") from None


def segment_argv(
    plan: ReplayPlan,
    segment: ReplaySegment,
    train_dir: str | Path,
    experiment: str,
    checkpoint: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command of one segment (an argv list)."""
    # last gate (plans built without vet_schedule too): never a key the rule refuses
    params = [render(key, value) for key, value in sorted(segment.params.items()) if not refusal(key)]
    run = [render("train_dir", str(train_dir)), render("experiment", experiment),
           render("max_iterations", segment.max_iterations)]  # fmt: skip
    if checkpoint:
        run.append(render("checkpoint", checkpoint))
    overrides = merge_overrides(merge_overrides(plan.base_overrides, [*params, *run]), list(extra))
    return [sys.executable, "-m", "poptrain.train", *overrides]


def describe(plan: ReplayPlan) -> list[str]:
    """Human-readable lines: one per segment."""
    lines = []
    prev: Mapping[str, Any] = {}
    for seg in plan.segments:
        changed = {k: v for k, v in seg.params.items() if prev.get(k) != v}
        shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in sorted(changed.items()))
        lines.append(
            f"segment {seg.index}: epochs {seg.start_epoch}..{seg.max_iterations} "
            f"(frames {seg.start_epoch * plan.frames_per_epoch}..{seg.max_iterations * plan.frames_per_epoch}"
            f"; recorded {seg.start_frames}..{seg.end_frames}): {shown or 'no change'}"
        )
        prev = seg.params
    return lines


Runner = Callable[[list[str]], tuple[int, str]]


def run_streaming(argv: list[str]) -> tuple[int, str]:
    """Run one segment, echoing its output; returns (exit code, the checkpoint it reported or '')."""
    checkpoint = ""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            match = _CHECKPOINT_LINE.match(line.rstrip("\n"))
            if match:
                checkpoint = match.group("path")
        code = proc.wait()
    return code, checkpoint


def run_replay(
    plan: ReplayPlan,
    train_dir: str | Path,
    experiment: str,
    extra: Sequence[str] = (),
    runner: Runner | None = None,
) -> str:
    """Run every segment in order (``runner``: default ``run_streaming``); returns the final checkpoint.
    PoptrainError when a segment fails."""
    runner = runner or run_streaming
    checkpoint: str | None = None
    for seg in plan.segments:
        argv = segment_argv(plan, seg, train_dir, experiment, checkpoint, extra)
        print(f"replay: segment {seg.index + 1}/{len(plan.segments)}: {shlex.join(argv)}", flush=True)
        code, reported = runner(argv)
        if code != 0:
            raise PoptrainError(
                f"replay segment {seg.index} failed with exit code {code}: {shlex.join(argv)}"
            )
        if not reported or not Path(reported).is_file():
            raise PoptrainError(f"replay segment {seg.index} reported no checkpoint (got {reported!r})")
        checkpoint = reported
    assert checkpoint is not None
    return checkpoint
