"""One colour per member, the same in every figure, readable from 2 to 256 members.

Strategy (documented in docs/report.md):

- up to ``MAX_DISTINCT`` (10) members: every member gets its own colour from matplotlib's ``tab10`` and its
  own legend entry;
- more members: the ``TOP_K`` (6) best by final objective get a ``tab10`` colour, a thicker line and a legend
  entry; every other member is drawn as a thin light-grey line under them, with one legend entry
  ``other members (n)``. The best member is always highlighted. What matters in a large population — who
  leads and how the leaders got there — stays visible; the grey mass shows the spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from matplotlib import colormaps
from matplotlib.colors import to_hex

MAX_DISTINCT = 10
TOP_K = 6
OTHER_COLOR = "#b8b8b8"


def palette(n: int) -> list[str]:
    """``n`` distinct colours (tab10, then tab20's light half for 11..20)."""
    base = [to_hex(c) for c in colormaps["tab10"].colors]  # type: ignore[attr-defined]
    extra = [to_hex(c) for c in colormaps["tab20"].colors[1::2]]  # type: ignore[attr-defined]
    colours = base + extra
    return [colours[i % len(colours)] for i in range(n)]


@dataclass(frozen=True)
class MemberColors:
    """Colour, line width and z-order per member; ``highlighted`` members get legend entries."""

    colors: dict[int, str]  #: member -> hex colour
    highlighted: list[int]  #: members with their own legend entry, best first
    others: list[int] = field(default_factory=list)  #: members drawn grey under one legend entry

    def color(self, member: int) -> str:
        return self.colors.get(member, OTHER_COLOR)

    def is_highlighted(self, member: int) -> bool:
        return member in self.highlighted

    def linewidth(self, member: int) -> float:
        if not self.others:
            return 1.6
        return 2.0 if self.is_highlighted(member) else 0.7

    def alpha(self, member: int) -> float:
        return 1.0 if self.is_highlighted(member) else 0.55

    def zorder(self, member: int) -> float:
        return 3.0 if self.is_highlighted(member) else 1.0

    def draw_order(self) -> list[int]:
        """Grey members first so highlighted ones are drawn on top."""
        return [*self.others, *reversed(self.highlighted)]


def member_colors(
    members: Sequence[int],
    final_objective: Mapping[int, float],
    max_distinct: int = MAX_DISTINCT,
    top_k: int = TOP_K,
) -> MemberColors:
    """Assign colours: all distinct for small populations, top-k by objective for large ones."""
    members = sorted(set(members))

    def score(m: int) -> float:
        value = final_objective.get(m, math.nan)
        return value if math.isfinite(value) else -math.inf

    ranked = sorted(members, key=lambda m: (-score(m), m))
    if len(members) <= max_distinct:
        colours = palette(len(members))
        return MemberColors({m: colours[i] for i, m in enumerate(members)}, ranked, [])
    top = [m for m in ranked if math.isfinite(score(m))][:top_k] or ranked[:top_k]
    colours = palette(len(top))
    return MemberColors({m: colours[i] for i, m in enumerate(top)}, top, [m for m in members if m not in top])
