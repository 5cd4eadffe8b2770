"""The shared PBT workspace: one folder every population member reads and writes.

``Workspace`` is the one object the engine, the report, ``poptrain status`` and the CLI open a workspace with;
the parts live in their own modules:

- ``pbt.layout``: every path and file-name pattern (the layout is declared there and nowhere else);
- ``pbt.meta``: ``MemberMeta`` (one metadata file, strictly checked both ways) and plain values;
- ``pbt.files``: atomic writes that raise WorkspaceError, reads that never follow a symbolic link;
- ``pbt.lineage``: ``LineageEvent``, the one shape of a lineage line, written and read by the same code;
- ``pbt.claims``: which process runs which member;
- ``pbt.ranking``: the stale rule and the one ordering of members ("the best member");
- ``pbt.export``: writing ``best/``.

Guarantees:

- Every file another process reads is written atomically (``pbt.files``): no half-written file is ever visible
  under its real name, and a full disk raises WorkspaceError naming the path.
- Readers read metadata only (never weights, except ``load_state`` of the one checkpoint being copied).
  A corrupt, truncated, partial, stray or foreign file is skipped with ONE warning per file (per version of
  it), and the sha256 checksum makes sure a reader never returns a value that differs from what was written.
- Lineage lines are appended whole and checked on read (``pbt.lineage``). Like the metadata checksum, this catches
  corruption, not forgery: values that become argv are filtered by ``poptrain.untrusted`` wherever they are used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import time as _time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from poptrain.errors import WorkspaceError
from poptrain.pbt import files, ranking
from poptrain.pbt.claims import Claims, _pid_alive
from poptrain.pbt.export import write_best
from poptrain.pbt.files import (
    SafeLoader,
    dump_yaml,
    no_link,
    read_no_link,
    torch_bytes,
    write_bytes,
)
from poptrain.pbt.layout import META_RE, PTH_RE, Layout, is_temp_name, is_workspace_file
from poptrain.pbt.lineage import LINEAGE_EVENTS, LineageEvent, LineageLog
from poptrain.pbt.meta import CHECKPOINT_DIGEST, MemberMeta, plain_state, to_float
from poptrain.pbt.params import STALE_AFTER_S, STALE_INTERVAL_FACTOR

__all__ = [
    "CHECKPOINT_DIGEST",
    "LINEAGE_EVENTS",
    "LineageEvent",
    "MemberMeta",
    "Workspace",
    "_pid_alive",
    "plain_state",
    "to_float",
]

# one logger for every part of the workspace: users filter on it
log = logging.getLogger("poptrain.pbt.workspace")


class Workspace:
    """The shared folder of one PBT population (safe for concurrent members on one or many machines)."""

    def __init__(
        self,
        root: str | Path,
        *,
        stale_after_s: float = STALE_AFTER_S,
        stale_interval_factor: float = STALE_INTERVAL_FACTOR,
    ):
        self.layout = Layout(Path(root))
        self.root = self.layout.root
        self.stale_after_s = float(stale_after_s)
        # staleness follows each member's pace: see PbtSettings.stale_interval_factor (defaults: the engine's)
        self.stale_interval_factor = float(stale_interval_factor)
        # (path, mtime_ns, size) of files already warned about: one warning per bad file (per version of it)
        self._warned: set[tuple[str, int, int]] = set()
        self.lineage = LineageLog(self.layout.lineage_path)
        self.claims = Claims(self.layout, self.stale_after_s, self.latest, self._warn_once)

    # -- paths ------------------------------------------------------------------------------------------
    @staticmethod
    def resolve_root(train_dir: str, workspace: str) -> Path:
        """An absolute ``workspace`` (shared by members on several machines) wins, else train_dir/workspace."""
        return Layout.resolve(train_dir, workspace).root

    def member_dir(self, member: int) -> Path:
        return self.layout.member_dir(member)

    def checkpoint_path(self, meta: MemberMeta) -> Path:
        """Where ``meta``'s checkpoint lies."""
        return self.layout.checkpoint_path(meta.member, meta.checkpoint)

    @property
    def lineage_path(self) -> Path:
        return self.layout.lineage_path

    @property
    def best_dir(self) -> Path:
        return self.layout.best_dir

    def members(self) -> list[int]:
        """Member folders present (``000``, ``001``, ...), sorted."""
        return self.layout.members()

    # -- warnings ---------------------------------------------------------------------------------------
    def _warn_once(self, path: Path, why: str) -> None:
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            key = (str(path), -1, -1)
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning("PBT workspace: skipping %s: %s", path, why)

    # -- metadata ---------------------------------------------------------------------------------------
    def _meta_files(self, member: int) -> list[tuple[int, str]]:
        """(iteration, path) of the member's metadata files, newest first; stray files warned about once."""
        d = self.member_dir(member)
        out = []
        try:
            entries = list(os.scandir(d))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for e in entries:
            m = META_RE.match(e.name)
            if m:
                out.append((int(m.group(1)), e.path))  # str: Path objects only for files actually read
            elif is_temp_name(e.name):
                continue  # another process is writing it right now
            elif not is_workspace_file(e.name):
                self._warn_once(Path(e.path), "not a PBT workspace file (expected <iteration:06d>.yaml/.pth)")
        out.sort(key=lambda t: t[0], reverse=True)
        return out

    def _read_meta(self, path: Path, member: int, iteration: int) -> MemberMeta | None:
        """Parse and verify one metadata file; None (one warning) when it is not valid."""
        try:
            raw = read_no_link(path)
        except FileNotFoundError:
            return None  # deleted between listing and reading
        except OSError as exc:
            self._warn_once(path, f"unreadable ({exc.strerror or exc})")
            return None
        try:
            data = yaml.load(raw.decode("utf-8"), Loader=SafeLoader)
            meta = MemberMeta.from_dict(data)
        except (
            UnicodeDecodeError,
            yaml.YAMLError,
            ValueError,
            TypeError,
            KeyError,
            OverflowError,
            RecursionError,
        ) as exc:
            self._warn_once(path, f"corrupt or foreign metadata ({type(exc).__name__}: {str(exc)[:120]})")
            return None
        if meta.member != member or meta.iteration != iteration:
            self._warn_once(
                path, f"metadata says member {meta.member} iteration {meta.iteration}, not its file name"
            )
            return None
        return meta

    def member_history(self, member: int) -> list[MemberMeta]:
        """Every valid metadata of one member, by iteration (oldest first)."""
        metas = [self._read_meta(Path(p), member, it) for it, p in reversed(self._meta_files(member))]
        return [m for m in metas if m is not None]

    def record_at(self, member: int, frames: int) -> MemberMeta | None:
        """The member's newest valid metadata written at or before ``frames`` (None when it has none): its
        record at a point of training progress (``pbt.compare: matched``). Reads newest first and stops at the
        first match, so a member near ``frames`` costs one or two reads."""
        for it, p in self._meta_files(member):
            meta = self._read_meta(Path(p), member, it)
            if meta is not None and meta.frames <= frames:
                return meta
        return None

    def latest(self, member: int) -> MemberMeta | None:
        """The member's newest valid metadata (older ones are tried when the newest is corrupt)."""
        for it, p in self._meta_files(member):
            meta = self._read_meta(Path(p), member, it)
            if meta is not None:
                return meta
        return None

    def stale_limit_s(self, meta: MemberMeta) -> float:
        """max(stale_after_s, stale_interval_factor x the member's own last interval, ``extra["interval_s"]``)."""
        return ranking.stale_limit_s(
            ranking.interval_of(meta), self.stale_after_s, self.stale_interval_factor
        )

    def is_stale(self, meta: MemberMeta, now: float | None = None) -> bool:
        """``ranking.is_stale_meta``: not finished and written more than ``stale_limit_s(meta)`` before ``now``."""
        now = _time.time() if now is None else now
        return ranking.is_stale_meta(meta, now, self.stale_after_s, self.stale_interval_factor)

    def read_population(self, now: float | None = None, include_stale: bool = False) -> dict[int, MemberMeta]:
        """Newest valid metadata of every member; stale members are left out unless ``include_stale``."""
        now = _time.time() if now is None else now
        out: dict[int, MemberMeta] = {}
        for member in self.members():
            meta = self.latest(member)
            if meta is not None and (include_stale or not self.is_stale(meta, now)):
                out[member] = meta
        return out

    def best(self, now: float | None = None) -> MemberMeta | None:
        """The best member's newest metadata by ``ranking.ranked`` (fresh before stale); None when no member has a
        finite objective. What ``best/`` exports."""
        now = _time.time() if now is None else now
        population = self.read_population(now=now, include_stale=True)
        return ranking.best(population.values(), lambda m: self.is_stale(m, now))

    # -- checkpoints ------------------------------------------------------------------------------------
    def write_checkpoint(self, meta: MemberMeta, state: dict, claim_token: str = "") -> Path:
        """Write ``state`` as ``meta.checkpoint`` then ``meta`` as ``<iteration:06d>.yaml``; return the yaml path.
        Any OSError (e.g. a full disk) raises WorkspaceError and leaves no partial or orphan file behind.
        With ``claim_token``: WorkspaceError before writing anything when that token no longer holds the member."""
        if claim_token:
            self.check_claim(meta.member, claim_token)
        d = no_link(self.member_dir(meta.member))
        pth = d / meta.checkpoint
        yml = self.layout.meta_path(meta.member, meta.iteration)
        payload = torch_bytes(state)
        # the checkpoint's own digest rides in the (checksummed) metadata: torch.load accepts a checkpoint with
        # flipped tensor bytes silently (measured: one flipped byte loads as a changed weight), load_state does not
        meta = dataclasses.replace(
            meta, extra={**meta.extra, CHECKPOINT_DIGEST: hashlib.sha256(payload).hexdigest()}
        )
        meta_bytes = dump_yaml(meta.to_dict())
        write_bytes(pth, payload)
        try:
            write_bytes(yml, meta_bytes)
        except BaseException:
            if not yml.exists():
                pth.unlink(missing_ok=True)  # no reader can reach it without its metadata
            raise
        return yml

    def load_state(self, meta: MemberMeta) -> dict:
        """Load meta's checkpoint weights-only on CPU; WorkspaceError when it is gone or unreadable."""
        path = self.checkpoint_path(meta)
        if path.is_symlink() or path.parent.is_symlink():
            raise WorkspaceError(f"checkpoint {str(path)!r} is or lies under a symbolic link; not followed")
        if not path.is_file():
            raise WorkspaceError(
                f"checkpoint {str(path)!r} of member {meta.member} iteration {meta.iteration} is gone "
                "(cleaned up or never written)"
            )
        try:
            raw = read_no_link(path)
        except OSError as exc:
            raise WorkspaceError(f"checkpoint {str(path)!r} is unreadable ({exc.strerror or exc})") from None
        expected = meta.extra.get(CHECKPOINT_DIGEST)
        if isinstance(expected, str) and hashlib.sha256(raw).hexdigest() != expected:
            raise WorkspaceError(
                f"checkpoint {str(path)!r} does not match the sha256 in its metadata (corrupt or replaced file)"
            )
        try:
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:  # any unpickling/format failure means "not a usable checkpoint"
            raise WorkspaceError(
                f"checkpoint {str(path)!r} is not readable with weights_only=True ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not isinstance(state, dict):
            raise WorkspaceError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, expected a dict")
        return state

    # -- lineage ----------------------------------------------------------------------------------------
    def append_lineage(self, event: str, member: int, **fields: Any) -> LineageEvent:
        """Append one ``LineageEvent`` (standard fields by name, any other keyword goes to its ``extra``); ValueError
        for a record the reader would skip, WorkspaceError when the file cannot be appended to."""
        return self.lineage.append(LineageEvent.create(event, member, **fields))

    def append_event(self, event: LineageEvent) -> LineageEvent:
        """Append ``event`` as built (the engine builds the dataclass itself); ValueError for an event the reader
        would skip, WorkspaceError when the file cannot be appended to."""
        return self.lineage.append(event)

    def read_lineage(self) -> list[LineageEvent]:
        """Every valid lineage event, in file order; corrupt lines are skipped with one warning each."""
        return self.lineage.read()

    # -- cleanup ----------------------------------------------------------------------------------------
    def _protected_iterations(self, member: int, keep_last: int) -> set[int]:
        """Iterations of ``member`` whose .pth another member may still need: the source of an exploit (or the
        parent in metadata) within that member's last ``keep_last`` iterations."""
        protected: set[int] = set()
        latest_iter: dict[int, int | None] = {}

        def current_iteration(m: int) -> int | None:
            if m not in latest_iter:
                meta = self.latest(m)
                latest_iter[m] = None if meta is None else meta.iteration
            return latest_iter[m]

        for event in self.read_lineage():
            if event.source != member or event.source_iteration is None:
                continue
            cur = current_iteration(event.member)
            if cur is None or event.iteration is None or event.iteration >= cur - keep_last:
                protected.add(event.source_iteration)
        for other in self.members():
            if other == member:
                continue
            meta = self.latest(other)
            if meta is not None and meta.parent is not None and meta.parent.get("member") == member:
                protected.add(meta.parent["iteration"])
        return protected

    def cleanup(self, member: int, keep_last: int = 3, *, tmp_older_than_s: float = 600.0) -> None:
        """Delete the member's old .pth files: keep the newest ``keep_last`` and any another member's recent
        exploit may still need. Metadata (.yaml) is never deleted: it is the history the report plots.
        Temp files of writers killed mid-write (``.*.tmp`` older than ``tmp_older_than_s``) are removed too."""
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        d = self.member_dir(member)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        now = _time.time()
        for name in names:
            if is_temp_name(name):
                try:
                    if now - (d / name).stat().st_mtime > tmp_older_than_s:
                        (d / name).unlink()
                except OSError:
                    pass  # gone already, or another process's problem
        pths = sorted(((int(m.group(1)), d / e) for e in names if (m := PTH_RE.match(e))), reverse=True)
        if len(pths) <= keep_last:
            return
        protected = self._protected_iterations(member, keep_last)
        for it, path in pths[keep_last:]:
            if it in protected:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("PBT workspace: cannot delete %s: %s", path, exc)

    def remove_temp_files(self, member: int) -> list[str]:
        """Delete every ``.*.tmp`` in the member's folder (call only while holding its claim: then they are
        leftovers of a writer of this member killed mid-write); returns the names removed."""
        return files.remove_temp_files(self.member_dir(member), f"member {member}")

    # -- best -------------------------------------------------------------------------------------------
    def export_best(
        self, meta: MemberMeta, state: dict, config: Mapping[str, Any], clean_temp: bool = False
    ) -> Path:
        """Write root/best/ (``pbt.export.write_best``); return the folder."""
        return write_best(self.layout, meta, state, config, clean_temp)

    # -- population and claims --------------------------------------------------------------------------
    def ensure_population(self, num_policies: int) -> None:
        """Create population.json (exactly once) or check that it agrees with ``num_policies``."""
        if isinstance(num_policies, bool) or not isinstance(num_policies, int) or num_policies < 1:
            raise WorkspaceError(f"num_policies must be an integer >= 1, got {num_policies!r}")
        path = self.layout.population_path
        data = json.dumps({"num_policies": num_policies, "created": _time.time()}, sort_keys=True).encode()
        try:
            write_bytes(path, data, exclusive=True)
            created = True
        except FileExistsError:
            created = False
        # Members start together and all try to create the file; one killed between its temp file and the link
        # leaves `.population.json.*.tmp` behind for good (the chaos suite found 2). Once the file exists every
        # such temp file is a loser's (its link fails, atomic_write reads a vanished one as FileExistsError).
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        if created:
            return
        try:
            existing = json.loads(path.read_bytes().decode("utf-8"))
            theirs = existing["num_policies"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkspaceError(
                f"{str(path)!r} is not a poptrain population file ({type(exc).__name__}); "
                "is pbt.workspace pointing at a foreign folder?"
            ) from None
        if theirs != num_policies:
            raise WorkspaceError(
                f"num_policies mismatch: this member has num_policies={num_policies} but the workspace "
                f"{str(self.root)!r} was created with num_policies={theirs}; use the same value for every member "
                "or a fresh pbt.workspace"
            )

    def current_claim(self, member: int) -> dict | None:
        """The member's newest claim (None: never claimed, released, or the newest one is unreadable)."""
        return self.claims.current_claim(member)

    def claim(self, member: int, num_policies: int) -> str:
        """Record that this process runs ``member``; return the claim token (``Claims.claim``)."""
        return self.claims.claim(member, num_policies)

    def check_claim(self, member: int, token: str) -> None:
        """WorkspaceError unless ``token`` still holds the member's newest claim (``Claims.check_claim``)."""
        self.claims.check_claim(member, token)

    def release_claim(self, member: int, token: str) -> None:
        """Release the member's claim if it is still ours (``Claims.release_claim``)."""
        self.claims.release_claim(member, token)
