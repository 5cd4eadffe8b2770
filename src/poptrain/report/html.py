"""``report.html``: one self-contained page (PNG figures embedded as base64 data URIs, no external
assets, opens offline) written next to the same PNGs as separate files; each embedded figure links to
its file for a full-size view.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poptrain.atomic import atomic_write
from poptrain.report import plots
from poptrain.report.population import PopulationView
from poptrain.report.schedule import format_value
from poptrain.report.status import best_member, objective_text, short_keys, status_rows, verdict

#: the PNG files a report writes, in page order: (file name, title)
FIGURES = (
    ("objective.png", "Objective vs env frames"),
    ("lineage.png", "Lineage tree"),
    ("params.png", "Hyperparameter schedules"),
)


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_report`` wrote."""

    html: Path  #: the report page
    pngs: list[Path]  #: the figures, also embedded in the page


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with ``poptrain.atomic.atomic_write``, readable by others."""
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp creates 0600; a report is for reading by others
    atomic_write(path, lambda f: f.write(data), mode=0o666 & ~umask)


def render_figures(view: PopulationView) -> dict[str, bytes]:
    """file name -> PNG bytes for every figure of the report."""
    colors = plots.colors_for(view)
    figures = {
        "objective.png": plots.plot_objective(view, colors),
        "lineage.png": plots.plot_lineage(view, colors),
        "params.png": plots.plot_params(view, colors),
    }
    return {name: plots.png_bytes(fig) for name, fig in figures.items()}


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _population_table(view: PopulationView) -> str:
    rows = status_rows(view)
    keys = sorted({k for r in rows for k in r.params})
    names = short_keys(keys)
    head = [
        "rank",
        "member",
        "objective",
        "iteration",
        "frames",
        *[names[k] for k in keys],
        "restarts",
        "exploits",
        "parent",
        "state",
    ]
    out = [
        "<table><thead><tr>"
        + "".join(
            f"<th title='{_esc(k)}'>{_esc(h)}</th>"
            for k, h in zip(["", "", "", "", "", *keys, "", "", "", ""], head, strict=True)
        )
        + "</tr></thead><tbody>"
    ]
    for r in rows:
        cells = [
            "—" if r.rank is None else r.rank,
            f"{r.member:03d}",
            objective_text(r),
            "—" if r.iteration is None else r.iteration,
            "—" if r.frames is None else f"{r.frames:,}",
            *[format_value(r.params[k]) if k in r.params else "—" for k in keys],
            r.restarts,
            r.exploits,
            "—" if not r.parent else f"{int(r.parent['member']):03d} @ it {r.parent.get('iteration')}",
            r.state,
        ]
        cls = " class='best'" if r.rank == 1 else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, Mapping):
        items: list[tuple[str, Any]] = []
        for key in data:
            items += _flatten(data[key], f"{prefix}.{key}" if prefix else str(key))
        return items
    return [(prefix, data)]


def _best_section(view: PopulationView) -> str:
    rows = status_rows(view)
    best = best_member(rows)
    parts = []
    if view.best_config is not None:
        who = view.best_meta.get("member") if view.best_meta else None
        obj = view.best_meta.get("objective") if view.best_meta else None
        parts.append(
            f"<p>Exported best policy: member <b>{_esc(who)}</b>, objective {_esc(obj)} — "
            f"<code>{_esc(view.root / 'best' / 'checkpoint.pth')}</code>. Play it with "
            f"<code>poptrain play {_esc(view.root)}</code>.</p>"
        )
        config = view.best_config
        mutable = set(view.mutable_keys())
    elif best is not None:
        meta = view.latest(best)
        assert meta is not None
        parts.append(
            f"<p>No <code>best/</code> export yet (the run may still be going). Current leader: "
            f"member <b>{best}</b>; its mutable params and Hydra overrides:</p>"
        )
        config = {"params": dict(meta.params), "overrides": list(meta.overrides)}
        mutable = set()
    else:
        return "<p>No member has a finite objective yet.</p>"
    parts.append("<table class='config'><thead><tr><th>key</th><th>value</th></tr></thead><tbody>")
    for key, value in _flatten(config):
        cls = " class='mutable'" if key in mutable else ""
        parts.append(f"<tr{cls}><td>{_esc(key)}</td><td>{_esc(json.dumps(value, default=str))}</td></tr>")
    parts.append("</tbody></table>")
    if mutable:
        parts.append(
            "<p class='small'>Highlighted rows are the mutable hyperparameters (their final values; "
            "the schedule that produced these weights is in the figure above and in "
            f"<code>poptrain replay {_esc(view.root)} --print</code>).</p>"
        )
    return "".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em} h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
img{max-width:100%;border:1px solid #eee} table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right} th{background:#f4f4f4}
table.config td{text-align:left;font-family:ui-monospace,monospace} tr.best td{font-weight:bold;background:#fff6d5}
tr.mutable td{background:#eef6ff} .small{font-size:.85em;color:#555} .notes li{color:#8a5a00}
code{background:#f4f4f4;padding:0 .2em}
"""


def build_html(view: PopulationView, pngs: Mapping[str, bytes]) -> str:
    """The page: verdict, notes, figures (embedded, linked to the files), tables."""
    rows = status_rows(view)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view.now))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>PBT report — {_esc(view.root.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>PBT report</h1><p class='small'>workspace <code>{_esc(view.root)}</code>, read {when}; "
        f"{len(view.members())} members, {len(view.lineage)} lineage events</p>",
        f"<p><b>{_esc(verdict(rows))}</b></p>",
    ]
    if view.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{_esc(n)}</li>" for n in view.notes) + "</ul>")
    for name, title in FIGURES:
        if name not in pngs:
            continue
        data = base64.b64encode(pngs[name]).decode("ascii")
        parts.append(
            f"<h2>{_esc(title)}</h2><a href='{name}'><img alt='{_esc(title)}' "
            f"src='data:image/png;base64,{data}'></a>"
        )
    parts.append("<h2>Final population</h2>" + _population_table(view))
    parts.append("<h2>Best member's full config</h2>" + _best_section(view))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(view: PopulationView, out_dir: str | Path) -> ReportFiles:
    """Write ``report.html`` and the PNGs it embeds into ``out_dir`` (created); returns the paths."""
    out = Path(out_dir)
    pngs = render_figures(view)
    paths = []
    for name, _title in FIGURES:
        path = out / name
        atomic_write_bytes(path, pngs[name])
        paths.append(path)
    page = out / "report.html"
    atomic_write_bytes(page, build_html(view, pngs).encode("utf-8"))
    return ReportFiles(page, paths)
