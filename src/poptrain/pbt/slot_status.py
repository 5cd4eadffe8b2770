"""Which time-sliced members run and which are parked: ``<workspace>/slots/slot_<k>.json`` (json only, so that
``poptrain status`` reads it without importing the trainer).

Each slot process (``poptrain.pbt.slots``) rewrites its file atomically at every member switch with
``{"slot", "pid", "host", "time", "members", "running", "parked", "finished", "switches", "switch_s", "wait_s",
"wall_s"}``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from poptrain.pbt.layout import Layout


def read_slot_status(
    workspace_root: str | Path, now: float | None = None, stale_after_s: float = math.inf
) -> dict[int, str]:
    """member -> "running" / "parked" from the slots' status files written less than ``stale_after_s`` ago
    (a dead slot's file ages out); members of no slot, and unreadable files, are left out."""
    now = time.time() if now is None else now
    out: dict[int, str] = {}
    for path in sorted(Layout(Path(workspace_root)).slots_dir().glob("slot_*.json")):
        try:
            status = json.loads(path.read_text())
            written = float(status["time"])
            running = status.get("running")
            parked = status.get("parked", [])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if not now - written <= stale_after_s:
            continue
        if isinstance(running, int) and not isinstance(running, bool):
            out[running] = "running"
        for m in parked if isinstance(parked, list) else []:
            if isinstance(m, int) and not isinstance(m, bool):
                out[m] = "parked"
    return out
