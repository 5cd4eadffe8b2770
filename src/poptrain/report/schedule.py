"""The hyperparameter schedule of one member's *weight lineage* (pure: no I/O).

A member's final weights were not trained by that member alone: every exploit replaced them with a copy of
a leader's weights. Following those copies back through ``lineage.jsonl`` gives a chain of segments, oldest
first, e.g. "member 2 from frame 0 to 40k, then member 0 (which copied 2 at 40k) from 40k to 100k". The
hyperparameters in force along that chain are the schedule PBT discovered for these weights — not the
winner's final config, which is only its last point.

Frames: every member keeps its own frame counter across exploits. The schedule is expressed in *replay
frames*: the number of env frames the weights themselves have been trained for, i.e. the frames of each
segment laid end to end.

Inputs are plain data: ``histories`` maps member -> its metadata sorted by iteration (objects with
``member, iteration, frames, params`` attributes, e.g. ``poptrain.pbt.workspace.MemberMeta``), ``events``
the lineage log's ``poptrain.pbt.lineage.LineageEvent`` s (type-checked when read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from poptrain.pbt.lineage import PARAM_EVENTS, LineageEvent


class MetaLike(Protocol):
    """What the schedule builder reads from one metadata record."""

    @property
    def member(self) -> int: ...
    @property
    def iteration(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ChangePoint:
    """From ``frames`` (in the member's own frame counter) on, the member ran with ``params``."""

    frames: int  #: member's own frame counter at which these params took effect
    params: dict[str, Any]  #: every mutable param's value from here on
    reason: str  #: "start", "exploit", "mutate", or "metadata" (a change seen only between two metadata)


@dataclass(frozen=True)
class Segment:
    """A stretch of the weight lineage trained by one member."""

    member: int  #: the member whose process trained the weights in this stretch
    start_frames: int  #: start, in that member's own frame counter
    end_frames: int  #: end, in that member's own frame counter
    replay_start: int  #: start, in replay frames (frames the weights had been trained before this stretch)
    via: LineageEvent | None = None  #: the exploit event that ended the previous segment (None for the first)

    @property
    def length(self) -> int:
        return self.end_frames - self.start_frames


@dataclass(frozen=True)
class SchedulePoint:
    """From ``frames`` replay frames on, train with ``params``."""

    frames: int  #: replay frames (cumulative along the lineage)
    params: dict[str, Any]  #: every mutable param's value from here on
    member: int  #: the member that ran these params
    member_frames: int  #: the same instant in that member's own frame counter
    reason: str  #: why the params changed here: start / exploit / mutate / metadata

    def changed_from(self, previous: SchedulePoint | None) -> dict[str, Any]:
        """The params that differ from ``previous`` (all of them for the first point)."""
        if previous is None:
            return dict(self.params)
        return {k: v for k, v in self.params.items() if previous.params.get(k) != v}


@dataclass(frozen=True)
class Schedule:
    """The schedule of ``member``'s weight lineage: change points in replay frames plus the segments."""

    member: int  #: the member whose final weights this schedule produced
    total_frames: int  #: replay frames at the end (the weights' whole training)
    points: list[SchedulePoint]  #: change points, frames ascending, first at 0
    segments: list[Segment]  #: the lineage, oldest first
    notes: list[str] = field(default_factory=list)  #: gaps the builder had to bridge (missing metadata, ...)

    def params_at(self, frames: int) -> dict[str, Any]:
        """The params in force at ``frames`` replay frames."""
        current: dict[str, Any] = {}
        for point in self.points:
            if point.frames > frames:
                break
            current = point.params
        return dict(current)


def _events_of(events: Sequence[LineageEvent], member: int) -> list[LineageEvent]:
    own = [e for e in events if e.member == member and e.event in PARAM_EVENTS]
    return sorted(own, key=lambda e: (e.frames or 0, e.time))


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def member_timeline(history: Sequence[MetaLike], events: Sequence[LineageEvent]) -> list[ChangePoint]:
    """Change points of one member's params in its own frames.

    The lineage events (exploit/mutate with ``new_params``) are the authority; the metadata fill in the
    start and any change whose event line is missing (a corrupt line): when metadata i carries params
    different from what the events say, the change is placed at metadata i-1's frames (decisions happen
    right after a save).
    """
    if not history and not events:
        return []
    member = history[0].member if history else events[0].member
    own = _events_of(events, member)
    start: dict[str, Any] = dict(history[0].params) if history else {}
    if own:
        first_event_frames = own[0].frames or 0
        if not history or first_event_frames < history[0].frames:
            # the first metadata already shows the event's result: start from the params before it
            start = {**start, **own[0].old_params}
    points = [ChangePoint(0, start, "start")]
    for event in own:
        frames = event.frames or 0
        points.append(ChangePoint(frames, {**_params_at(points, frames), **event.new_params}, event.event))
    points.sort(key=lambda p: p.frames)
    # reconcile with metadata: a change the log does not explain
    for prev, meta in zip(history, history[1:], strict=False):
        expected = _params_at(points, meta.frames)
        if any(expected.get(k) != v for k, v in meta.params.items()):
            if not any(prev.frames <= p.frames <= meta.frames and p.reason != "metadata" for p in points[1:]):
                points.append(ChangePoint(prev.frames, {**expected, **dict(meta.params)}, "metadata"))
                points.sort(key=lambda p: p.frames)
    return points


def _params_at(points: Sequence[ChangePoint], frames: int) -> dict[str, Any]:
    current: dict[str, Any] = {}
    for point in points:
        if point.frames > frames:
            break
        current = point.params
    return dict(current)


def _frames_at_iteration(history: Sequence[MetaLike], iteration: int | None) -> int | None:
    """Frames of the metadata at ``iteration`` (or the newest before it)."""
    if iteration is None:
        return None
    best: MetaLike | None = None
    for meta in history:
        if meta.iteration <= iteration:
            best = meta
    return None if best is None else best.frames


def lineage_segments(
    member: int,
    histories: Mapping[int, Sequence[MetaLike]],
    events: Sequence[LineageEvent],
    notes: list[str] | None = None,
) -> list[Segment]:
    """Follow ``member``'s weights back through exploits; the segments oldest first (replay_start filled)."""
    notes = notes if notes is not None else []
    history = histories.get(member) or []
    end = (
        history[-1].frames
        if history
        else max((e.frames or 0 for e in events if e.member == member), default=0)
    )
    backwards: list[tuple[int, int, int, LineageEvent | None]] = []
    current, seen = member, 0
    limit = len(events) + 1
    while True:
        exploits = [
            e
            for e in _events_of(events, current)
            if e.event == "exploit" and (e.frames or 0) <= end and e.source is not None
        ]
        if not exploits or seen >= limit:
            if seen >= limit:
                notes.append(f"lineage of member {member} loops; cut after {limit} exploits")
            backwards.append((current, 0, end, None))
            break
        event = exploits[-1]
        start = event.frames or 0
        backwards.append((current, start, end, event))
        source = event.source
        assert source is not None
        src_iter = event.source_iteration
        src_frames = _as_int(event.extra.get("source_frames"))  # optional, not type-checked by the reader
        if src_frames is None:
            src_frames = _frames_at_iteration(histories.get(source) or [], src_iter)
        if src_frames is None:
            notes.append(
                f"no metadata of member {source} at iteration {src_iter} (copied by member "
                f"{current} at frame {start}); assuming frame {start}"
            )
            src_frames = start
        current, end, seen = source, src_frames, seen + 1
    segments: list[Segment] = []
    offset = 0
    for who, start, stop, via in reversed(backwards):
        stop = max(stop, start)
        segments.append(Segment(who, start, stop, offset, via))
        offset += stop - start
    return segments


def build_schedule(
    member: int, histories: Mapping[int, Sequence[MetaLike]], events: Sequence[LineageEvent]
) -> Schedule:
    """The schedule of ``member``'s weight lineage: (replay frames, params) change points."""
    notes: list[str] = []
    segments = lineage_segments(member, histories, events, notes)
    timelines: dict[int, list[ChangePoint]] = {}
    points: list[SchedulePoint] = []
    for seg in segments:
        if seg.member not in timelines:
            timelines[seg.member] = member_timeline(
                histories.get(seg.member) or [], [e for e in events if e.member == seg.member]
            )
        timeline = timelines[seg.member]
        first_reason = "start" if seg.via is None else "exploit"
        candidates = [(seg.start_frames, _params_at(timeline, seg.start_frames), first_reason)]
        candidates += [
            (p.frames, p.params, p.reason) for p in timeline if seg.start_frames < p.frames < seg.end_frames
        ]
        for frames, params, reason in candidates:
            replay = seg.replay_start + frames - seg.start_frames
            if points and points[-1].params == params:
                continue
            if points and points[-1].frames == replay:
                points.pop()
                if points and points[-1].params == params:
                    continue
            points.append(SchedulePoint(replay, params, seg.member, frames, reason))
    total = segments[-1].replay_start + segments[-1].length if segments else 0
    return Schedule(member, total, points, segments, notes)


def format_value(value: Any) -> str:
    """A param value for display: floats in 4 significant digits, the rest as is."""
    if isinstance(value, float) and not isinstance(value, bool):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)
