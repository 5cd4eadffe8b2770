"""The lineage log: one ``LineageEvent`` per exploit / mutate / restart / resume, one JSON line each.

``LineageEvent`` is the only shape of an event: the engine writes it (``LineageLog.append``), the report, replay
and the engine's own cleanup read it back (``LineageLog.read``) as the same dataclass, so a field is added,
renamed or type-checked in one place. On disk an event is a flat JSON object (the standard fields below, the
event-specific ``extra`` fields beside them, and a ``sha256`` over all of them), as written since the first
version, so older workspaces read unchanged.

Lines are appended with one ``os.write`` of the whole line to an ``O_APPEND`` descriptor (concurrent members never
interleave); each line's sha256 and the type of every standard field are checked on read, and a bad line is
skipped with ONE warning naming the line and why. The checksum catches corruption, not forgery: values that
become argv are filtered by ``poptrain.untrusted`` wherever they are used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poptrain.checkpoints import chaos_enospc
from poptrain.errors import WorkspaceError
from poptrain.pbt.meta import digest, plain_data

# one logger for every part of the workspace: users filter on it
log = logging.getLogger("poptrain.pbt.workspace")

#: Lineage events the engine writes (``append`` accepts any lower-case name, these are the standard ones).
LINEAGE_EVENTS = ("exploit", "mutate", "restart", "resume")
#: events after which a member's hyperparameters may differ
PARAM_EVENTS = ("exploit", "mutate")
_EVENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class LineageEvent:
    """One line of ``lineage.jsonl``."""

    event: str  # exploit | mutate | restart | resume (any lower-case name is accepted)
    member: int  # the member the event happened to
    time: float  # unix time when written
    source: int | None = None  # exploit: the leader whose weights were copied (restart: the parent)
    source_iteration: int | None = None  # the leader's iteration whose checkpoint was copied
    iteration: int | None = None  # the member's PBT iteration at the event
    frames: int | None = None  # the member's own frame counter at the event
    old_params: dict[str, Any] = field(default_factory=dict)  # mutable params before
    new_params: dict[str, Any] = field(default_factory=dict)  # mutable params after
    changed: list[str] = field(default_factory=list)  # keys whose value changed
    mode: str | None = None  # hot_swap | restart | initial | initial_sample | from_scratch | None
    #: event-specific fields, flat beside the standard ones on disk: latency_s, applied, mutated, cause,
    #: checkpoint, objective, source_objective, source_frames (not type-checked: read them with care)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, event: str, member: int, **fields: Any) -> LineageEvent:
        """An event from keyword fields (standard names fill the fields, any other goes to ``extra``); the values
        are made plain (numpy / tensor numbers become Python numbers) and checked as the reader will check them,
        so the engine can never write a line its own reader would skip (ValueError naming the field)."""
        if not isinstance(event, str) or not _EVENT_RE.match(event):
            raise ValueError(
                f"lineage event must be a lower-case name such as {LINEAGE_EVENTS}, got {event!r}"
            )
        fields.pop("sha256", None)
        defaults = {
            f.name: f.default_factory() if callable(f.default_factory) else f.default
            for f in dataclasses.fields(cls)
            if f.name in _STANDARD
        }
        record = plain_data(
            {**defaults, "event": event, "member": member, "time": time.time(), **fields}, "lineage"
        )
        problem = _problem(record)
        if problem:
            raise ValueError(f"lineage record: {problem}")
        return cls._from_checked(record)

    @classmethod
    def from_record(cls, record: Any) -> LineageEvent:
        """The event a line's JSON object holds; ValueError (why) when a field has a wrong type or the sha256 does
        not match (the line was edited, truncated or garbled after it was written)."""
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        problem = _problem(record)
        if problem:
            raise ValueError(problem)
        written = record.get("sha256")
        body = {k: v for k, v in record.items() if k != "sha256"}
        if not isinstance(written, str) or written != digest(body):
            raise ValueError("sha256 missing or does not match the line (corrupt or edited)")
        return cls._from_checked(body)

    @classmethod
    def _from_checked(cls, record: Mapping[str, Any]) -> LineageEvent:
        values = {name: record[name] for name in _STANDARD if name in record}
        extra = {k: v for k, v in record.items() if k not in _STANDARD}
        return cls(**values, extra=extra)

    def checked(self) -> LineageEvent:
        """This event with its values made plain (numpy / tensor numbers become Python numbers) and checked as the
        reader checks them (ValueError naming the field): ``LineageLog.append`` writes only checked events, however
        they were built (``create`` or the dataclass itself, as the observer does)."""
        record = plain_data(self.to_record(), "lineage")
        problem = _problem(record)
        if problem:
            raise ValueError(f"lineage record: {problem}")
        return self._from_checked(record)

    def to_record(self) -> dict[str, Any]:
        """The flat JSON object of this event (without its sha256)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **record}

    def to_line(self) -> bytes:
        """One JSON line with the sha256 over the record: what ``LineageLog.append`` writes."""
        record = self.to_record()
        signed = {**record, "sha256": digest(record)}
        return (json.dumps(signed, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")


_STANDARD = tuple(f.name for f in dataclasses.fields(LineageEvent) if f.name != "extra")


def _problem(rec: Mapping[str, Any]) -> str:
    """Why ``rec`` is not a valid lineage record ('' when it is): every standard field type-checked."""

    def is_int(v: Any) -> bool:
        return type(v) is int and v >= 0

    def opt_int(v: Any) -> bool:
        return v is None or is_int(v)

    def params(v: Any) -> bool:
        return isinstance(v, dict) and all(isinstance(k, str) for k in v)

    problems = []
    if not (isinstance(rec.get("event"), str) and _EVENT_RE.match(rec["event"])):
        problems.append("event")
    if not is_int(rec.get("member")):
        problems.append("member")
    problems += [n for n in ("source", "source_iteration", "iteration", "frames") if not opt_int(rec.get(n))]
    problems += [n for n in ("old_params", "new_params") if not params(rec.get(n))]
    changed = rec.get("changed")
    if not (isinstance(changed, list) and all(isinstance(c, str) for c in changed)):
        problems.append("changed")
    if not (rec.get("mode") is None or isinstance(rec.get("mode"), str)):
        problems.append("mode")
    t = rec.get("time")
    if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)):
        problems.append("time")
    return "wrong or missing field(s) " + ", ".join(problems) if problems else ""


class LineageLog:
    """``lineage.jsonl`` of one workspace: append events, read the valid ones back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # (line number, sha1 of the line) already warned about: one warning per bad line
        self._warned: set[tuple[int, str]] = set()

    def append(self, event: LineageEvent) -> LineageEvent:
        """Append one line (one os.write to an O_APPEND fd) and return the event as written (``checked``); ValueError
        for an event the reader would skip, WorkspaceError naming the file when the append fails."""
        event = event.checked()
        line = event.to_line()
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WorkspaceError(f"cannot append to {str(path)!r}: {exc.strerror or exc}") from exc
        try:
            chaos_enospc()
            written = os.write(fd, line)
            if written != len(line):  # a short write (full disk): end the broken line so the next one parses
                os.write(fd, b"\n")
                raise WorkspaceError(
                    f"cannot append to {str(path)!r}: short write ({written}/{len(line)} bytes)"
                )
        except OSError as exc:
            raise WorkspaceError(f"cannot append to {str(path)!r}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        return event

    def read(self) -> list[LineageEvent]:
        """Every valid event, in file order; corrupt lines are skipped with one warning each."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("PBT workspace: cannot read %s: %s", self.path, exc)
            return []
        out = []
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                out.append(LineageEvent.from_record(json.loads(line.decode("utf-8"))))
                continue
            except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
                why = f"not JSON ({type(exc).__name__})"
            except ValueError as exc:
                why = str(exc)
            key = (lineno, hashlib.sha1(line).hexdigest())
            if key not in self._warned:
                self._warned.add(key)
                log.warning("PBT workspace: skipping corrupt line %d of %s: %s", lineno, self.path, why)
        return out
