"""Find the PBT workspace a user means: a workspace itself or a run dir with exactly one below it."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from poptrain.errors import WorkspaceError
from poptrain.pbt.layout import BEST_DIR, Layout

#: folders never searched for a workspace (rl_games output, caches, a workspace's best/)
SKIP_DIRS = {"nn", "summaries", "__pycache__", BEST_DIR}
#: how deep below a run dir a workspace is looked for
SEARCH_DEPTH = 4
#: at most this many folders are visited while searching (a huge tree gets a clear error, not a hang)
SEARCH_LIMIT = 20_000

EXPECTED = (
    "expected a PBT workspace (a folder holding population.json and/or NNN/ member folders with "
    "NNNNNN.yaml metadata) or a run dir with exactly one such workspace up to "
    f"{SEARCH_DEPTH} levels below it"
)


def is_workspace(path: Path) -> bool:
    """True for a folder that looks like a PBT workspace (possibly empty or half-written): ``Layout``'s rule."""
    return Layout(path).looks_like_workspace()


def find_workspaces(path: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Every workspace at or below ``path`` (breadth first, ``depth`` levels, not inside a workspace)."""
    found: list[Path] = []
    queue: deque[tuple[Path, int]] = deque([(path, 0)])
    visited = 0
    while queue:
        folder, level = queue.popleft()
        visited += 1
        if visited > SEARCH_LIMIT:
            raise WorkspaceError(f"{str(path)!r} has more than {SEARCH_LIMIT} folders to search; {EXPECTED}")
        if is_workspace(folder):
            found.append(folder)
            continue
        if level >= depth:
            continue
        try:
            children = sorted(c for c in folder.iterdir() if c.is_dir())
        except OSError:
            continue
        for child in children:
            if child.name.startswith(".") or child.name in SKIP_DIRS:
                continue
            queue.append((child, level + 1))
    return found


def find_workspace(path: str | Path) -> Path:
    """The workspace ``path`` names: itself, or the single one below it; WorkspaceError otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise WorkspaceError(f"{str(path)!r} does not exist; {EXPECTED}")
    if not p.is_dir():
        raise WorkspaceError(f"{str(path)!r} is a file, not a folder; {EXPECTED}")
    if is_workspace(p):
        return p
    found = find_workspaces(p)
    if not found:
        raise WorkspaceError(f"no PBT workspace in {str(path)!r}; {EXPECTED}")
    if len(found) > 1:
        listed = ", ".join(str(f) for f in found[:10]) + (" ..." if len(found) > 10 else "")
        raise WorkspaceError(f"{str(path)!r} holds {len(found)} PBT workspaces ({listed}); pass one of them")
    return found[0]
