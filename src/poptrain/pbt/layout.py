"""The one declaration of a PBT workspace's layout: every path, file name and name pattern lives here.

::

    <root>/population.json             {"num_policies": N, "created": t}
    <root>/<idx:03d>/                  one folder per member (never a symbolic link)
    <root>/<idx:03d>/<iter:06d>.pth    checkpoint, plain Python/tensor values (loads weights_only=True)
    <root>/<idx:03d>/<iter:06d>.yaml   MemberMeta (written after its .pth), with a sha256 over its fields
    <root>/<idx:03d>/claim.<gen>.json  {"pid", "host", "time", "token", "job"} of the process running member idx
                                       (the newest generation holds; see ``poptrain.pbt.claims``)
    <root>/lineage.jsonl               one JSON line per exploit / mutate / restart / resume (``pbt.lineage``)
    <root>/best/                       checkpoint.pth + config.yaml + meta.yaml of the best member
    <root>/.best.lock                  flock serialising exporters of best/
    <root>/slots/slot_<k>.json         time-sliced slot k's status (``pbt.slot_status``), decisions.jsonl beside
    <any>/.<name>.<random>.tmp         a writer's temp file before its os.replace (``checkpoints.atomic_write``)

Names found in the workspace are untrusted (anyone who can write the folder chooses them): a folder or file is
only taken for a member / metadata / checkpoint / claim when its whole name matches the patterns below, and
member folders that are symbolic links are never listed (they could point anywhere).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: a member folder: ``000``, ``001``, ... (3 digits, more beyond 999 members)
MEMBER_DIR_RE = re.compile(r"^(\d{3,})$")
#: a member's metadata / checkpoint: ``<iter:06d>.yaml`` / ``<iter:06d>.pth``
META_RE = re.compile(r"^(\d{6,})\.yaml$")
PTH_RE = re.compile(r"^(\d{6,})\.pth$")
#: one generation of a member's claim
CLAIM_RE = re.compile(r"^claim\.(\d{6,})\.json$")
#: the single-file claim of older versions (tolerated in a member folder, never read)
LEGACY_CLAIM = "claim.json"

POPULATION_FILE = "population.json"
LINEAGE_FILE = "lineage.jsonl"
BEST_DIR = "best"
BEST_LOCK = ".best.lock"
BEST_CHECKPOINT = "checkpoint.pth"
BEST_CONFIG = "config.yaml"
BEST_META = "meta.yaml"
SLOTS_DIR = "slots"


def is_temp_name(name: str) -> bool:
    """A writer's temp file (``.<name>.<random>.tmp``): in progress, or left by a writer killed mid-write."""
    return name.startswith(".") and name.endswith(".tmp")


def member_name(member: int) -> str:
    return f"{int(member):03d}"


def checkpoint_name(iteration: int) -> str:
    """File name of a member's checkpoint at ``iteration`` (beside its metadata)."""
    return f"{int(iteration):06d}.pth"


def meta_name(iteration: int) -> str:
    """File name of a member's metadata at ``iteration``."""
    return f"{int(iteration):06d}.yaml"


def claim_name(generation: int) -> str:
    return f"claim.{int(generation):06d}.json"


def is_workspace_file(name: str) -> bool:
    """A name the engine writes into a member folder (anything else there is stray and warned about)."""
    return bool(META_RE.match(name) or PTH_RE.match(name) or CLAIM_RE.match(name) or name == LEGACY_CLAIM)


@dataclass(frozen=True)
class Layout:
    """The paths of one workspace at ``root`` (pure: building a path never touches the disk)."""

    root: Path

    @classmethod
    def resolve(cls, train_dir: str, workspace: str) -> Layout:
        """An absolute ``workspace`` (shared by members on several machines) wins, else train_dir/workspace."""
        from poptrain.errors import WorkspaceError

        if not str(workspace).strip():
            raise WorkspaceError(
                "pbt.workspace is empty: give a folder name (under train_dir) or an absolute path"
            )
        ws = Path(workspace).expanduser()
        return cls(ws if ws.is_absolute() else Path(train_dir).expanduser() / ws)

    def member_dir(self, member: int) -> Path:
        return self.root / member_name(member)

    def meta_path(self, member: int, iteration: int) -> Path:
        return self.member_dir(member) / meta_name(iteration)

    def checkpoint_path(self, member: int, checkpoint: str) -> Path:
        """A member's checkpoint by the file name its metadata records (``MemberMeta`` checks it is a bare name)."""
        return self.member_dir(member) / checkpoint

    def claim_path(self, member: int, generation: int) -> Path:
        return self.member_dir(member) / claim_name(generation)

    @property
    def population_path(self) -> Path:
        return self.root / POPULATION_FILE

    @property
    def lineage_path(self) -> Path:
        return self.root / LINEAGE_FILE

    @property
    def best_dir(self) -> Path:
        return self.root / BEST_DIR

    @property
    def best_checkpoint(self) -> Path:
        return self.best_dir / BEST_CHECKPOINT

    @property
    def best_config(self) -> Path:
        return self.best_dir / BEST_CONFIG

    @property
    def best_meta(self) -> Path:
        return self.best_dir / BEST_META

    @property
    def best_lock(self) -> Path:
        return self.root / BEST_LOCK

    def slots_dir(self) -> Path:
        return self.root / SLOTS_DIR

    def slot_status_path(self, slot: int) -> Path:
        return self.slots_dir() / f"slot_{int(slot)}.json"

    def slot_decisions_path(self) -> Path:
        return self.slots_dir() / "decisions.jsonl"

    def members(self) -> list[int]:
        """Member folders present (``000``, ``001``, ...), sorted; symbolic links are never listed."""
        try:
            names = [
                e.name
                for e in os.scandir(self.root)
                if e.is_dir(follow_symlinks=False) and MEMBER_DIR_RE.match(e.name)
            ]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(n) for n in names)

    def looks_like_workspace(self) -> bool:
        """True for a folder that looks like a PBT workspace (possibly empty or half-written): population.json or
        lineage.jsonl, or a member folder holding at least one metadata file."""
        if not self.root.is_dir():
            return False
        if self.population_path.is_file() or self.lineage_path.is_file():
            return True
        for member in self.members():
            try:
                if any(META_RE.match(f.name) for f in os.scandir(self.member_dir(member))):
                    return True
            except OSError:
                continue
        return False
