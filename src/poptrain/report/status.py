"""The leaderboard: one row per member, a one-line verdict, JSON for scripts, a rich table for people.

``status_rows`` and ``status_json`` are pure functions of a ``PopulationView``; ``render`` builds the rich
renderable that ``poptrain status`` prints (and ``--watch`` refreshes in place).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from poptrain.report.population import PopulationView
from poptrain.report.schedule import format_value
from poptrain.untrusted import shown


@dataclass(frozen=True)
class StatusRow:
    """One member in the leaderboard."""

    member: int  #: policy_idx
    objective: float  #: window mean objective of the newest metadata (NaN: unknown)
    rank: int | None  #: 1 = best among members with a finite objective
    iteration: int | None  #: PBT iteration of the newest metadata
    frames: int | None  #: the member's own env frames
    params: dict[str, Any]  #: current mutable params (full dotted keys)
    restarts: int  #: os.execv restarts so far
    exploits: int  #: weight copies so far
    last_seen_s: float | None  #: seconds since the newest metadata was written
    state: str  #: running / parked / stale / finished / no data
    parent: dict[str, Any] | None  #: whose weights it last copied
    experiment: str  #: the member's experiment name
    objective_se: float = math.nan  #: standard error of the windowed objective (NaN: not recorded)
    window: int = 0  #: finished episodes in the objective's window (0: not recorded)

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "objective": self.objective if math.isfinite(self.objective) else None,
            "objective_se": self.objective_se if math.isfinite(self.objective_se) else None,
            "window": self.window,
            "rank": self.rank,
            "iteration": self.iteration,
            "frames": self.frames,
            "params": _finite_json(self.params),
            "restarts": self.restarts,
            "exploits": self.exploits,
            "last_seen_s": None if self.last_seen_s is None else round(self.last_seen_s, 1),
            "state": self.state,
            "parent": self.parent,
            "experiment": self.experiment,
        }


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float as None: strict JSON (a NaN or inf param value is workspace data)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


def status_rows(view: PopulationView) -> list[StatusRow]:
    """Rows sorted best first (rank: ``PopulationView.ranking``, stale members after the others), members without
    a finite objective last (by index)."""
    rows: list[StatusRow] = []
    for member in view.members():
        meta = view.latest(member)
        if meta is None:
            rows.append(StatusRow(member, math.nan, None, None, None, {}, 0, 0, None, "no data", None, ""))
            continue
        rows.append(
            StatusRow(
                member=member,
                objective=float(meta.objective),
                rank=None,
                iteration=meta.iteration,
                frames=meta.frames,
                params=dict(meta.params),
                restarts=meta.restarts,
                exploits=meta.exploits,
                last_seen_s=max(0.0, view.now - meta.time),
                state=view.state(member),
                parent=dict(meta.parent) if meta.parent else None,
                experiment=meta.experiment,
                **_window_fields(meta),
            )
        )
    # one order for the engine, status, the report and best/ (pbt.ranking): stale members after every other one
    ranks = {member: i + 1 for i, member in enumerate(view.ranking())}
    rows = [StatusRow(**{**r.__dict__, "rank": ranks.get(r.member)}) for r in rows]
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.member))


def _window_fields(meta: Any) -> dict[str, Any]:
    """objective_se / window from the metadata's extra (written by the observer since issue 14)."""
    extra = getattr(meta, "extra", None) or {}
    se, n = extra.get("objective_se"), extra.get("objective_n")
    out: dict[str, Any] = {"objective_se": math.nan, "window": 0}
    if isinstance(se, (int, float)) and not isinstance(se, bool) and math.isfinite(se) and se >= 0:
        out["objective_se"] = float(se)
    if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
        out["window"] = n
    return out


def objective_text(r: StatusRow) -> str:
    """``0.781 ±0.018 (n 512)``: the windowed objective, its standard error and window size when recorded."""
    if not math.isfinite(r.objective):
        return "—"
    text = f"{r.objective:.4g}"
    if math.isfinite(r.objective_se):
        text += f" ±{r.objective_se:.2g}"
    if r.window:
        text += f" (n {r.window})"
    return text


def best_member(rows: list[StatusRow]) -> int | None:
    """The member ranked first (None when no member has a finite objective yet)."""
    return next((r.member for r in rows if r.rank == 1), None)


def verdict(rows: list[StatusRow]) -> str:
    """One line: best member, its objective, the spread over the ranked members, and the states."""
    if not rows:
        return "no members yet: nothing has written metadata to this workspace"
    ranked = [r for r in rows if r.rank is not None]
    states = _state_counts(rows)
    if not ranked:
        return f"no member has a finite objective yet ({states})"
    best = ranked[0]
    values = [r.objective for r in ranked]
    spread = f"spread {min(values):.4g}..{max(values):.4g}"
    if len(values) > 1:
        spread += f" (std {statistics.pstdev(values):.3g})"
    return (
        f"best: member {best.member} objective {best.objective:.4g} at iteration {best.iteration}, "
        f"{_frames(best.frames)} frames; {spread} over {len(ranked)} members; {states}"
    )


def _state_counts(rows: list[StatusRow]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def status_json(view: PopulationView, rows: list[StatusRow] | None = None) -> dict[str, Any]:
    """The machine-readable status: ``{"members": [...], "best": idx|None, ...}``."""
    rows = status_rows(view) if rows is None else rows
    return {
        "workspace": str(view.root),
        "num_policies": view.num_policies,
        "members": [r.to_json() for r in rows],
        "best": best_member(rows),
        "verdict": verdict(rows),
        "lineage_events": len(view.lineage),
        "notes": list(view.notes) + waiting_notes(view),
    }


def waiting_notes(view: PopulationView) -> list[str]:
    """One ``waiting`` note per running member that could make no PBT decision for ``warn_after`` iterations or
    more (the observer writes the streak and the population counts into its metadata's ``extra.waiting``)."""
    notes = []
    for member in view.members():
        meta = view.latest(member)
        waiting = meta.extra.get("waiting") if meta is not None and not meta.finished else None
        if not isinstance(waiting, dict):
            continue
        counts = {k: v for k, v in waiting.items() if isinstance(v, int) and not isinstance(v, bool)}
        streak, warn_after = counts.get("iterations", 0), max(1, counts.get("warn_after", 3))
        if streak < warn_after:
            continue
        notes.append(
            f"member {member:03d} waiting: no PBT decision possible for {streak} iterations "
            f"({counts.get('valid', 0)} valid, {counts.get('missing', 0)} missing, {counts.get('stale', 0)} stale, "
            f"{counts.get('no_objective', 0)} without objective)"
        )
    return notes


# ---- rendering -----------------------------------------------------------------------------------------
def short_keys(keys: list[str]) -> dict[str, str]:
    """Shortest unambiguous dotted suffix per key: train.params.config.learning_rate -> learning_rate."""
    short: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for other in keys if other == cand or other.endswith("." + cand)) == 1:
                short[key] = cand
                break
        else:
            short[key] = key
    return short


def _frames(frames: int | None) -> str:
    if frames is None:
        return "—"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if frames >= size:
            return f"{frames / size:.3g}{unit}"
    return str(frames)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


STATE_STYLE = {"running": "green", "parked": "cyan", "finished": "bold", "stale": "yellow", "no data": "red"}


def render(view: PopulationView, rows: list[StatusRow] | None = None) -> Group:
    """The rich renderable: title, leaderboard, verdict, notes."""
    rows = status_rows(view) if rows is None else rows
    keys = sorted({k for r in rows for k in r.params})
    names = short_keys(keys)
    # every cell, header and title is a Text built from shown(): workspace content (keys, values, paths) is
    # untrusted, and a plain str cell is parsed as rich markup ("[/x]" raised MarkupError)
    table = Table(
        title=Text(shown(f"PBT population  {view.root}", 400)),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in (
        "#",
        "member",
        "objective",
        "iter",
        "frames",
        *[names[k] for k in keys],
        "rst/exp",
        "parent",
        "seen",
    ):
        table.add_column(Text(shown(header, 60)), justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for r in rows:
        cells: list[Any] = [
            "—" if r.rank is None else str(r.rank),
            f"{r.member:03d}",
            objective_text(r),
            "—" if r.iteration is None else str(r.iteration),
            _frames(r.frames),
            *[format_value(r.params[k]) if k in r.params else "—" for k in keys],
            "—" if r.iteration is None else f"{r.restarts}/{r.exploits}",
            "—" if not r.parent else f"{int(r.parent['member']):03d}@{r.parent.get('iteration')}",
            _ago(r.last_seen_s),
        ]
        table.add_row(
            *[Text(shown(c, 60)) for c in cells],
            Text(r.state, style=STATE_STYLE.get(r.state, "")),
            style="bold" if r.rank == 1 else None,
        )
    parts: list[Any] = [table, Text(shown(verdict(rows), 1000), style="bold")]
    for note in view.notes + waiting_notes(view):
        parts.append(Text(shown(f"note: {note}", 1000), style="yellow"))
    return Group(*parts)
