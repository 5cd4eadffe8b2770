"""Read a workspace once into a ``PopulationView``: every member's metadata history, the lineage log,
the exported best policy and the problems met on the way (never raises for half-written content).

This module only reads: it never writes to the workspace (members may be running).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from poptrain.pbt.lineage import LineageEvent
from poptrain.pbt.params import STALE_AFTER_S, STALE_INTERVAL_FACTOR
from poptrain.pbt.ranking import is_stale_meta, ranked
from poptrain.pbt.slot_status import read_slot_status
from poptrain.pbt.workspace import MemberMeta, Workspace

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

log = logging.getLogger(__name__)

#: default seconds without new metadata after which a member counts as stale: the engine's one default
DEFAULT_STALE_AFTER_S = STALE_AFTER_S
_STALE_FACTOR = STALE_INTERVAL_FACTOR  # the engine's default pace factor (metadata does not carry it)


@dataclass
class PopulationView:
    """Everything the status table, the plots and replay need, read once."""

    root: Path  #: the workspace folder
    now: float  #: the time the view was read (unix)
    stale_after_s: float  #: metadata older than this marks a member stale
    num_policies: int | None  #: population size from population.json (None when missing/corrupt)
    member_dirs: list[int]  #: member folders present (with or without valid metadata)
    histories: dict[int, list[MemberMeta]]  #: member -> valid metadata by iteration (members with any)
    lineage: list[LineageEvent]  #: valid lineage events in file order
    best_meta: dict[str, Any] | None = None  #: best/meta.yaml when exported
    best_config: dict[str, Any] | None = None  #: best/config.yaml (the best member's full config)
    best_checkpoint: Path | None = None  #: best/checkpoint.pth when present
    notes: list[str] = field(default_factory=list)  #: what was skipped or is missing, for the user

    def latest(self, member: int) -> MemberMeta | None:
        history = self.histories.get(member)
        return history[-1] if history else None

    def members(self) -> list[int]:
        """Members to show: folders present plus any that population.json promises."""
        promised = set(range(self.num_policies)) if self.num_policies else set()
        return sorted(set(self.member_dirs) | set(self.histories) | promised)

    def state(self, member: int) -> str:
        """running / parked / stale / finished / no data (parked: a time-sliced member waiting for its slot)."""
        meta = self.latest(member)
        if meta is None:
            return "no data"
        if meta.finished:
            return "finished"
        slot_state = read_slot_status(self.root, self.now, self.stale_after_s).get(member)
        if slot_state is not None:
            return slot_state
        # the engine's own rule: a member writing every hour is not stale after 10 minutes
        if is_stale_meta(meta, self.now, self.stale_after_s, _STALE_FACTOR):
            return "stale"
        return "running"

    def ranking(self) -> list[int]:
        """Members with a finite objective, best first, by ``poptrain.pbt.ranking.ranked`` (the engine's order):
        members in state "stale" after every other one; a finished or parked member is not stale."""
        metas = [meta for meta in map(self.latest, self.members()) if meta is not None]
        return [meta.member for meta in ranked(metas, lambda meta: self.state(meta.member) == "stale")]

    def best(self) -> int | None:
        """The member ranked first (None when no member has a finite objective yet)."""
        order = self.ranking()
        return order[0] if order else None

    def mutable_keys(self) -> list[str]:
        """Every mutable param key seen in any metadata, sorted."""
        keys: set[str] = set()
        for history in self.histories.values():
            for meta in history:
                keys.update(meta.params)
        return sorted(keys)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def collect_warnings(logger_name: str = "poptrain.pbt") -> Iterator[list[str]]:
    """Collect (instead of printing) the warnings the workspace reader logs, e.g. skipped corrupt files."""
    handler = _Collect()
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _read_population_json(path: Path, notes: list[str]) -> int | None:
    if not path.exists():
        notes.append(f"{path.name} is missing (no member has started yet, or not a complete workspace)")
        return None
    try:
        data = json.loads(path.read_text())
        return int(data["num_policies"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        notes.append(f"{path.name} is unreadable ({type(exc).__name__}); population size unknown")
        return None


def _read_yaml(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """A YAML mapping from best/, or None with a note: missing, a symbolic link (never followed: it could point
    anywhere), invalid UTF-8, not YAML, nested too deep for the parser, or not a mapping."""
    if path.is_symlink():
        notes.append(f"{path} is a symbolic link; not followed, skipped")
        return None
    if not path.exists():
        return None
    try:
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=_SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        notes.append(f"{path} is unreadable ({type(exc).__name__}); skipped")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path} is not a mapping; skipped")
        return None
    return data


def load_population(
    root: str | Path, *, now: float | None = None, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> PopulationView:
    """Read the workspace at ``root`` (see ``poptrain.report.locate.find_workspace``) into a view."""
    root = Path(root)
    notes: list[str] = []
    ws = Workspace(root, stale_after_s=stale_after_s)
    with collect_warnings() as warned:
        num_policies = _read_population_json(ws.layout.population_path, notes)
        member_dirs = ws.members()
        histories: dict[int, list[MemberMeta]] = {}
        for member in member_dirs:
            history = ws.member_history(member)
            if history:
                histories[member] = history
            else:
                notes.append(f"member {member:03d}: folder exists but holds no valid metadata yet")
        lineage = ws.read_lineage()
    notes.extend(warned)
    if num_policies is not None:
        missing = [m for m in range(num_policies) if m not in member_dirs]
        if missing:
            notes.append(
                f"population.json says {num_policies} members; no folder yet for "
                + ", ".join(f"{m:03d}" for m in missing)
            )
        outside = [m for m in member_dirs if m >= num_policies]
        if outside:
            notes.append(f"member folders outside 0..{num_policies - 1}: {outside}")
    view = PopulationView(
        root=root,
        now=time.time() if now is None else now,
        stale_after_s=stale_after_s,
        num_policies=num_policies,
        member_dirs=member_dirs,
        histories=histories,
        lineage=lineage,
        notes=notes,
    )
    layout = ws.layout
    best = layout.best_dir
    if best.is_symlink():
        notes.append(f"{best} is a symbolic link; not followed, best policy not shown")
    elif best.is_dir():
        view.best_meta = _read_yaml(layout.best_meta, notes)
        view.best_config = _read_yaml(layout.best_config, notes)
        ckpt = layout.best_checkpoint
        view.best_checkpoint = ckpt if ckpt.is_file() and not ckpt.is_symlink() else None
    return view
