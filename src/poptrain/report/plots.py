"""Figures of a population (matplotlib, Agg backend; pure: a PopulationView in, a Figure out).

- ``plot_objective``: objective vs the member's env frames; every exploit is a dashed jump in the
  *source's* colour from the member's curve to the level of the weights it copied, ending in a triangle
  (labelled ``m<-s`` while there are few enough to read).
- ``plot_lineage``: members (rows) over PBT iterations (columns); each row is coloured by the founder whose
  weights it currently carries, so a lineage taking over the population reads as one colour spreading;
  exploit edges join the source's row at the copied iteration to the member's row; the best member's
  weight lineage is traced in black.
- ``plot_params``: one panel per mutable hyperparameter, value vs frames per member (step lines), plus the
  best member's lineage schedule (what ``poptrain replay`` follows) as a black dashed line.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from poptrain.pbt.lineage import LineageEvent  # noqa: E402
from poptrain.report.colors import OTHER_COLOR, MemberColors, member_colors, palette  # noqa: E402
from poptrain.report.population import PopulationView  # noqa: E402
from poptrain.report.schedule import build_schedule, lineage_segments, member_timeline  # noqa: E402
from poptrain.report.status import short_keys  # noqa: E402
from poptrain.untrusted import is_number, shown  # noqa: E402

#: exploits are labelled "m<-s" only while there are at most this many
MAX_LABELS = 24
#: every member gets a y tick label in the lineage tree up to this population size
MAX_ROW_LABELS = 32


def colors_for(view: PopulationView) -> MemberColors:
    """The colour assignment every figure of one report shares."""
    final = {m: float(h[-1].objective) for m, h in view.histories.items() if h}
    return member_colors(view.members(), final)


def best_of(view: PopulationView) -> int | None:
    """The member ranked first (``PopulationView.ranking``: the order status and the engine use)."""
    return view.best()


def _fmt_frames(x: float, _pos: Any = None) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:g}{unit}"
    return f"{x:g}"


def _legend(ax: Any, colors: MemberColors, extra: Sequence[Line2D] = ()) -> None:
    handles: list[Line2D] = [
        Line2D([], [], color=colors.color(m), lw=2, label=f"member {m}") for m in colors.highlighted
    ]
    if colors.others:
        handles.append(Line2D([], [], color=OTHER_COLOR, lw=1, label=f"other members ({len(colors.others)})"))
    handles.extend(extra)
    ncol = 1 if len(handles) <= 12 else 2
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
        ncol=ncol,
        borderaxespad=0.0,
    )


def _empty(fig: Figure, ax: Any, message: str) -> Figure:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _objective_at(history: Sequence[Any], frames: int, after: bool) -> float | None:
    """The member's objective at its last metadata <= frames (after=False) or first > frames (after=True)."""
    chosen = None
    for meta in history:
        if (meta.frames > frames) if after else (meta.frames <= frames):
            chosen = meta
            if after:
                break
    if chosen is None or not math.isfinite(chosen.objective):
        return None
    return float(chosen.objective)


def plot_objective(view: PopulationView, colors: MemberColors | None = None) -> Figure:
    """Objective vs env frames per member, exploits marked (who copied whom)."""
    colors = colors or colors_for(view)
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Objective (window mean) vs env frames")
    if not view.histories:
        return _empty(fig, ax, "no member has written metadata yet")
    for member in colors.draw_order():
        history = view.histories.get(member) or []
        pts = [(m.frames, m.objective) for m in history if math.isfinite(m.objective)]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.plot(
            xs,
            ys,
            color=colors.color(member),
            lw=colors.linewidth(member),
            alpha=colors.alpha(member),
            zorder=colors.zorder(member),
            marker="o" if len(pts) < 30 and not colors.others else None,
            ms=3,
        )
    exploits = [e for e in view.lineage if e.event == "exploit" and e.source is not None]
    label = len(exploits) <= MAX_LABELS
    for event in exploits:
        member, source = event.member, int(event.source or 0)
        frames = event.frames or 0
        low = _objective_at(view.histories.get(member) or [], frames, after=False)
        high = _source_objective(view, event)
        if high is None:
            high = _objective_at(view.histories.get(member) or [], frames, after=True)
        if high is None:
            continue
        low = high if low is None else low
        emphasis = colors.is_highlighted(member) or colors.is_highlighted(source)
        colour = colors.color(source) if colors.is_highlighted(source) else "#808080"
        ax.plot(
            [frames, frames],
            [low, high],
            ls="--",
            lw=1.0 if emphasis else 0.6,
            color=colour,
            alpha=0.9 if emphasis else 0.5,
            zorder=4 if emphasis else 2,
        )
        ax.plot(
            [frames],
            [high],
            marker="^",
            ms=7 if emphasis else 4,
            color=colour,
            markeredgecolor=colors.color(member) if emphasis else colour,
            markeredgewidth=1.2,
            zorder=5 if emphasis else 2,
            ls="none",
        )
        if label:
            ax.annotate(
                f"{member}←{source}",
                (frames, high),
                xytext=(3, 4),
                textcoords="offset points",
                fontsize=7,
                color="#333333",
                zorder=6,
            )
    ax.set_xlabel("env frames (each member's own counter)")
    ax.set_ylabel("objective")
    ax.xaxis.set_major_formatter(_fmt_frames)
    ax.grid(alpha=0.3)
    extra = (
        [
            Line2D(
                [],
                [],
                ls="--",
                marker="^",
                color="#555555",
                lw=1,
                label="exploit: jump to copied weights\n(colour = source, m←s)",
            )
        ]
        if exploits
        else []
    )
    _legend(ax, colors, extra)
    return fig


def _source_objective(view: PopulationView, event: LineageEvent) -> float | None:
    it = event.source_iteration
    for meta in view.histories.get(event.source or 0) or []:
        if it is not None and meta.iteration == it and math.isfinite(meta.objective):
            return float(meta.objective)
    return None


def founders(view: PopulationView) -> dict[int, list[tuple[int, int]]]:
    """member -> [(iteration, founder)]: whose original weights the member carries from that iteration on.

    Every member starts as its own founder; an exploit hands the source's founder (at the copied
    iteration) to the member. Events are applied in time order.
    """
    changes: dict[int, list[tuple[int, int]]] = {m: [(0, m)] for m in view.members()}

    def founder_at(member: int, iteration: int) -> int:
        current = member
        for it, f in changes.setdefault(member, [(0, member)]):
            if it <= iteration:
                current = f
        return current

    exploits = [e for e in view.lineage if e.event == "exploit" and e.source is not None]
    for event in sorted(exploits, key=lambda e: e.time):
        member, source = event.member, int(event.source or 0)
        src_it = event.source_iteration if event.source_iteration is not None else 10**9
        it = event.iteration or 0
        changes.setdefault(member, [(0, member)]).append((it, founder_at(source, src_it)))
        changes[member].sort(key=lambda c: c[0])
    return changes


def plot_lineage(view: PopulationView, colors: MemberColors | None = None) -> Figure:
    """Members over iterations, coloured by founder; exploit edges; the best's weight lineage in black."""
    colors = colors or colors_for(view)
    members = view.members()
    n = max(len(members), 1)
    fig = Figure(figsize=(10, min(14.0, max(3.2, 0.2 * n + 1.8))), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Lineage: whose weights each member carries (colour = founder), exploit edges")
    if not view.histories:
        return _empty(fig, ax, "no member has written metadata yet")
    row = {m: i for i, m in enumerate(members)}
    changes = founders(view)

    def founder_at(member: int, iteration: int) -> int:
        current = member
        for it, f in changes.get(member, [(0, member)]):
            if it <= iteration:
                current = f
        return current

    # founders alive at the end get colours, most widespread first
    final = {m: founder_at(m, h[-1].iteration) for m, h in view.histories.items() if h}
    alive = sorted(set(final.values()), key=lambda f: (-sum(1 for v in final.values() if v == f), f))
    # a founder that is a highlighted member keeps that member's colour; others take unused shades
    spare = [c for c in palette(20) if c not in set(colors.colors.values())]
    founder_color: dict[int, str] = {}
    for f in alive[:10]:
        founder_color[f] = (
            colors.color(f) if colors.is_highlighted(f) else spare[len(founder_color) % len(spare)]
        )
    lw = 6.0 if n <= 16 else max(1.5, 120.0 / n)
    for member, history in view.histories.items():
        its = [m.iteration for m in history]
        for a, b in zip(its, its[1:], strict=False):
            colour = founder_color.get(founder_at(member, a), "#d9d9d9")  # weights held during (a, b]
            ax.plot([a, b], [row[member]] * 2, color=colour, lw=lw, solid_capstyle="butt", zorder=1)
        if len(its) == 1:
            ax.plot(
                its,
                [row[member]],
                marker="s",
                color=founder_color.get(founder_at(member, its[0]), "#d9d9d9"),
                zorder=1,
            )
    for event in view.lineage:
        if event.event != "exploit" or event.source is None:
            continue
        member, source = event.member, event.source
        if member not in row or source not in row:
            continue
        x1 = event.iteration or 0
        x0 = event.source_iteration if event.source_iteration is not None else x1
        ax.annotate(
            "",
            xy=(x1, row[member]),
            xytext=(x0, row[source]),
            zorder=2,
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#444444",
                "lw": 0.6 if n > 16 else 0.9,
                "alpha": 0.6,
                "shrinkA": 0,
                "shrinkB": 1,
                "mutation_scale": 6 if n > 16 else 9,
            },
        )
    best = best_of(view)
    if best is not None:
        _trace_best(ax, view, best, row)
    ax.set_yticks(range(len(members)))
    labels = [f"{m:03d}" if (n <= MAX_ROW_LABELS or i % 8 == 0) else "" for i, m in enumerate(members)]
    ax.set_yticklabels(labels, fontsize=8 if n <= MAX_ROW_LABELS else 7)
    ax.set_ylim(len(members) - 0.5, -0.5)
    ax.set_xlabel("PBT iteration")
    ax.set_ylabel("member")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=founder_color[f], lw=5, label=f"founder {f}") for f in alive[:10]]
    if len(alive) > 10:
        handles.append(Line2D([], [], color="#d9d9d9", lw=5, label=f"{len(alive) - 10} more founders"))
    handles.append(Line2D([], [], color="#d9d9d9", lw=5, label="extinct lineage"))
    handles.append(Line2D([], [], color="#444444", lw=0.9, marker=">", label="exploit (source → member)"))
    if best is not None:
        handles.append(Line2D([], [], color="black", lw=2, label=f"best member {best}'s weight lineage"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def _trace_best(ax: Any, view: PopulationView, best: int, row: Mapping[int, int]) -> None:
    """Black path through the rows that trained the best member's final weights."""
    segments = lineage_segments(best, view.histories, view.lineage)
    xs: list[float] = []
    ys: list[float] = []
    for seg in segments:
        history = view.histories.get(seg.member) or []
        its = [m.iteration for m in history if seg.start_frames <= m.frames <= seg.end_frames]
        if seg.via is not None and seg.via.iteration is not None:
            its = [seg.via.iteration, *its]
        if not its or seg.member not in row:
            continue
        xs += [min(its), max(its)]
        ys += [row[seg.member]] * 2
    if xs:
        ax.plot(xs, ys, color="black", lw=1.8, zorder=3)


def plot_params(view: PopulationView, colors: MemberColors | None = None) -> Figure:
    """One panel per mutable hyperparameter: value vs the member's frames (steps), best lineage dashed."""
    colors = colors or colors_for(view)
    keys = view.mutable_keys()
    names = short_keys(keys)
    ncols = 1 if len(keys) <= 1 else 2
    nrows = max(1, math.ceil(len(keys) / ncols))
    fig = Figure(figsize=(10 + (1.5 if ncols == 2 else 0), 1.2 + 2.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if not keys:
        return _empty(fig, axes[0][0], "no mutable hyperparameters recorded yet")
    fig.suptitle("Hyperparameters vs env frames (the schedules PBT discovered)")
    timelines: dict[int, list[Any]] = {
        m: member_timeline(h, [e for e in view.lineage if e.member == m]) for m, h in view.histories.items()
    }
    best = best_of(view)
    schedule = build_schedule(best, view.histories, view.lineage) if best is not None else None
    for i, key in enumerate(keys):
        ax = axes[i // ncols][i % ncols]
        values: list[float] = []
        for member in colors.draw_order():
            timeline, history = timelines.get(member), view.histories.get(member)
            if not timeline or not history:
                continue
            # workspace values are untrusted: only finite numbers are plotted (strings, NaN, lists are skipped)
            xs = [p.frames for p in timeline if is_number(p.params.get(key))] + [history[-1].frames]
            ys = [p.params[key] for p in timeline if is_number(p.params.get(key))]
            if not ys:
                continue
            ys.append(ys[-1])
            values += [float(y) for y in ys]
            ax.step(
                xs,
                ys,
                where="post",
                color=colors.color(member),
                lw=colors.linewidth(member),
                alpha=colors.alpha(member),
                zorder=colors.zorder(member),
            )
        if schedule is not None and schedule.points:
            xs = [p.frames for p in schedule.points if is_number(p.params.get(key))] + [schedule.total_frames]
            ys = [p.params[key] for p in schedule.points if is_number(p.params.get(key))]
            if ys:
                ys.append(ys[-1])
                ax.step(xs, ys, where="post", color="black", ls="--", lw=1.4, zorder=5)
        positive = [v for v in values if v > 0]
        if (
            values
            and len(positive) == len(values)
            and (max(values) / min(values) > 20 or "learning_rate" in key or key.endswith("lr"))
        ):
            ax.set_yscale("log")
        ax.set_title(plain_label(names[key]), fontsize=10)
        if not values:
            ax.text(
                0.5,
                0.5,
                "no numeric values",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="#666666",
            )
        ax.xaxis.set_major_formatter(_fmt_frames)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for j in range(len(keys), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    extra = []
    if schedule is not None:
        extra = [
            Line2D(
                [],
                [],
                color="black",
                ls="--",
                lw=1.4,
                label=f"best member {best}'s lineage\nschedule (replay frames)",
            )
        ]
    _legend(axes[0][ncols - 1], colors, extra)
    for ax in axes[-1]:
        ax.set_xlabel("env frames")
    return fig


def plain_label(text: Any, limit: int = 80) -> str:
    """Workspace text as a matplotlib label: one line, no math text (``$\\frac{$`` failed at draw time)."""
    return shown(text, limit).replace("$", r"\$")


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
