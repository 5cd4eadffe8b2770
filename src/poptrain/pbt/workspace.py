"""The shared PBT workspace: one folder every population member reads and writes.

Layout (see WORKSPACE_SPEC.md)::

    <root>/population.json           {"num_policies": N, "created": t}
    <root>/<idx:03d>/<iter:06d>.pth  checkpoint, plain Python/tensor values (loads weights_only=True)
    <root>/<idx:03d>/<iter:06d>.yaml MemberMeta (written after its .pth), with a sha256 over its fields
    <root>/<idx:03d>/claim.<gen>.json {"pid", "host", "time", "token", "job"} of the process running member idx
                                     (the newest generation holds; see Workspace.claim)
    <root>/lineage.jsonl             one JSON line per exploit / mutate / restart / resume
    <root>/best/                     checkpoint.pth + config.yaml + meta.yaml of the best member

Guarantees:

- Every file another process reads is written to a temp file in the same folder, flushed, fsync'ed and
  ``os.replace``d; an OSError (full disk, quota) removes the temp file and raises WorkspaceError naming the
  path, so no half-written file is ever visible under its real name.
- Readers read metadata only (never weights, except ``load_state`` of the one checkpoint being copied).
  A corrupt, truncated, partial, stray or foreign file is skipped with ONE warning per file (per version of
  it), and the sha256 checksum makes sure a reader never returns a value that differs from what was written.
- Lineage lines are appended with one ``os.write`` of the whole line to an ``O_APPEND`` descriptor; each carries
  a sha256 over its other fields and every standard field is type-checked on read (bad lines: one warning, skipped).
  Like the metadata checksum, it catches corruption, not forgery: values that become argv are filtered by
  ``poptrain.untrusted`` wherever they are used.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import hashlib
import io
import json
import logging
import math
import os
import re
import socket
import time as _time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from poptrain.checkpoints import atomic_write, chaos_enospc
from poptrain.errors import WorkspaceError
from poptrain.pbt.selection import interval_of
from poptrain.pbt.selection import stale_limit_s as _stale_limit_s
from poptrain.untrusted import shown

log = logging.getLogger(__name__)

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

#: Lineage events the engine writes (``append_lineage`` accepts any lower-case name, these are the standard ones).
LINEAGE_EVENTS = ("exploit", "mutate", "restart", "resume")
#: File names of a member's metadata / checkpoint: ``<iter:06d>.yaml`` / ``<iter:06d>.pth``.
_META_RE = re.compile(r"^(\d{6,})\.yaml$")
_PTH_RE = re.compile(r"^(\d{6,})\.pth$")
_MEMBER_DIR_RE = re.compile(r"^\d{3,}$")
_EVENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: ``MemberMeta.extra`` key of the sha256 of the checkpoint bytes (set by ``write_checkpoint``)
CHECKPOINT_DIGEST = "checkpoint_sha256"
_CLAIM_RE = re.compile(r"^claim\.(\d{6,})\.json$")


# ----------------------------------------------------------------------------------------------------------
# Plain values: what may go into metadata, lineage lines and checkpoints
# ----------------------------------------------------------------------------------------------------------
def _plain_scalar(value: Any, where: str) -> Any:
    """A JSON/YAML-safe scalar from Python, numpy or 0-d tensor values (raises ValueError otherwise)."""
    if isinstance(value, np.generic):  # first: np.float64 is also a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        count = value.size if isinstance(value, np.ndarray) else value.numel()
        if count == 1:
            return value.reshape(-1)[0].item()
        raise ValueError(
            f"{where}: expected a scalar, got a {type(value).__name__} of shape {tuple(value.shape)}"
        )
    raise ValueError(f"{where}: expected a scalar (int, float, str, bool, None), got {type(value).__name__}")


def _plain_data(value: Any, where: str) -> Any:
    """Recursively convert to JSON/YAML-safe data (dict with str keys, list, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return _plain_scalar(value, where)


def to_float(value: Any) -> float:
    """A plain Python float from a float, int, numpy scalar or one-element tensor/array (NaN stays NaN)."""
    out = _plain_scalar(value, "objective")
    if isinstance(out, bool) or not isinstance(out, (int, float)):
        raise ValueError(f"objective: expected a number, got {out!r}")
    return float(out)


def plain_state(state: Any, where: str = "state") -> Any:
    """Make a checkpoint loadable with ``torch.load(weights_only=True)``: numpy scalars become Python numbers,
    numpy arrays become tensors, tensors move to the CPU (a file written on a GPU loads anywhere), containers
    are rebuilt; anything else raises WorkspaceError naming the key. The one numpy-to-plain converter for
    checkpoints (agent saves, PBT checkpoints, ``api.Trainer.save``). (rl_games puts a numpy scalar in
    ``last_mean_rewards``, which weights-only loading refuses.)"""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, np.ndarray):
        return torch.from_numpy(np.array(state))
    if isinstance(state, np.generic):  # before the Python types: np.float64 subclasses float
        return state.item()
    if state is None or isinstance(state, (bool, int, float, str, bytes)):
        return state
    if isinstance(state, collections.OrderedDict):
        return collections.OrderedDict((k, plain_state(v, f"{where}.{k}")) for k, v in state.items())
    if isinstance(state, Mapping):
        return {k: plain_state(v, f"{where}.{k}") for k, v in state.items()}
    if isinstance(state, tuple):
        return tuple(plain_state(v, f"{where}[{i}]") for i, v in enumerate(state))
    if isinstance(state, list):
        return [plain_state(v, f"{where}[{i}]") for i, v in enumerate(state)]
    if isinstance(state, torch.Size):
        return list(state)
    raise WorkspaceError(
        f"checkpoint value {where} has type {type(state).__name__}, which torch.load(weights_only=True) "
        "cannot read back; use tensors, numbers, strings, lists or dicts"
    )


# ----------------------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemberMeta:
    """One metadata file: the state of member ``member`` at PBT iteration ``iteration``."""

    member: int  # policy_idx
    iteration: int  # PBT iteration of this member (increments every interval)
    frames: int  # env frames this member has trained (its own counter, kept across exploits/restarts)
    epoch: int  # rl_games epoch counter
    objective: float  # window mean of the objective (plain float; NaN = not yet known)
    params: dict[str, Any]  # current value of every mutable param, full dotted keys
    checkpoint: str  # file name of the .pth beside it (relative to the member dir)
    experiment: str  # the member's experiment name
    experiment_dir: str  # the member's experiment folder
    time: float  # unix time when written
    num_policies: int  # population size the member was started with
    parent: dict[str, int] | None = None  # {"member", "iteration"} whose weights this member last copied
    restarts: int = 0  # os.execv restarts so far
    exploits: int = 0  # exploits (weight copies) so far
    overrides: list[str] = field(default_factory=list)  # Hydra command-line overrides currently in force
    finished: bool = False  # True only in the member's final metadata
    extra: dict[str, Any] = field(default_factory=dict)  # free-form

    def __post_init__(self) -> None:
        # Normalise what callers commonly pass (numpy / tensor numbers, tuples) into plain values, then
        # check types strictly so a bad value fails here, at write time, not in another member's reader.
        set_ = object.__setattr__
        set_(self, "objective", to_float(self.objective))
        for name in ("member", "iteration", "frames", "epoch", "num_policies", "restarts", "exploits"):
            value = _plain_scalar(getattr(self, name), name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            set_(self, name, value)
        set_(self, "time", float(_plain_scalar(self.time, "time")))
        set_(self, "params", _plain_data(self.params, "params"))
        set_(self, "extra", _plain_data(self.extra, "extra"))
        set_(self, "overrides", list(self.overrides))
        if self.parent is not None:
            set_(self, "parent", _plain_data(self.parent, "parent"))
        _check_types(self._fields_dict())
        if self.member < 0 or self.iteration < 0 or self.frames < 0 or self.num_policies < 1:
            raise ValueError(
                f"member={self.member}, iteration={self.iteration}, frames={self.frames} must be >= 0 and "
                f"num_policies={self.num_policies} >= 1"
            )
        if not self.checkpoint or "/" in self.checkpoint or self.checkpoint in (".", ".."):
            raise ValueError(f"checkpoint must be a file name beside the metadata, got {self.checkpoint!r}")

    def _fields_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON (sort_keys) of every field."""
        return _digest(self._fields_dict())

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``sha256`` (what goes to disk)."""
        d = self._fields_dict()
        d["sha256"] = _digest(d)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> MemberMeta:
        """Strict inverse of ``to_dict``: exact key set, exact types, matching sha256; else ValueError."""
        if not isinstance(d, Mapping):
            raise ValueError(f"metadata must be a mapping, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        expected = set(names) | {"sha256"}
        if set(d) != expected:
            missing = sorted(expected - set(d), key=str)
            unknown = sorted(set(d) - expected, key=str)
            raise ValueError(f"metadata keys differ: missing {missing}, unknown {unknown}")
        fields = {k: d[k] for k in names}
        _check_types(fields)
        digest = d["sha256"]
        if not isinstance(digest, str) or digest != _digest(fields):
            raise ValueError("metadata sha256 does not match its content (corrupt or edited file)")
        return cls(**fields)


_INT_FIELDS = ("member", "iteration", "frames", "epoch", "num_policies", "restarts", "exploits")


def _check_types(f: Mapping[str, Any]) -> None:
    """Raise ValueError unless every field has exactly its declared type."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    problems = [n for n in _INT_FIELDS if not is_int(f[n])]
    if not (isinstance(f["objective"], float)):
        problems.append("objective")
    if not (isinstance(f["time"], float) and math.isfinite(f["time"])):
        problems.append("time")
    for n in ("checkpoint", "experiment", "experiment_dir"):
        if not isinstance(f[n], str):
            problems.append(n)
    for n in ("params", "extra"):
        if not (isinstance(f[n], dict) and all(isinstance(k, str) for k in f[n])):
            problems.append(n)
    if not (isinstance(f["overrides"], list) and all(isinstance(o, str) for o in f["overrides"])):
        problems.append("overrides")
    if not isinstance(f["finished"], bool):
        problems.append("finished")
    parent = f["parent"]
    if parent is not None and not (
        isinstance(parent, dict)
        and set(parent) == {"member", "iteration"}
        and all(is_int(v) for v in parent.values())
    ):
        problems.append("parent")
    if problems:
        shown = ", ".join(f"{n}={f[n]!r}" for n in problems)
        raise ValueError(f"metadata fields have wrong types: {shown}")


def _lineage_problem(rec: dict[str, Any], checked: bool = False) -> str:
    """Why ``rec`` is not a valid lineage record ('' when it is): every standard field type-checked, and with
    ``checked`` its ``sha256`` verified (a line edited, truncated or garbled after it was written fails)."""

    def is_int(v: Any, lo: int = 0) -> bool:
        return type(v) is int and v >= lo

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
    if problems:
        return "wrong or missing field(s) " + ", ".join(problems)
    if checked:
        digest = rec.get("sha256")
        body = {k: v for k, v in rec.items() if k != "sha256"}
        if not isinstance(digest, str) or digest != _digest(body):
            return "sha256 missing or does not match the line (corrupt or edited)"
    return ""


def _digest(fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _dump_yaml(data: Any) -> bytes:
    return yaml.dump(
        data, Dumper=_SafeDumper, sort_keys=True, default_flow_style=False, allow_unicode=True
    ).encode()


# ----------------------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """``checkpoints.atomic_write`` of ``data``; an OSError (other than the exclusive FileExistsError) becomes a
    WorkspaceError naming the path. The temp file never stays."""
    try:
        atomic_write(path, lambda f: f.write(data), exclusive=exclusive)
    except FileExistsError:
        raise
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise WorkspaceError(
            f"cannot write {str(path)!r}: {reason} (errno {exc.errno}); nothing was written"
        ) from exc


def _torch_bytes(state: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(plain_state(state), buf)
    return buf.getvalue()


def _no_link(d: Path) -> Path:
    """``d`` unless it is a symbolic link: a member folder or best/ replaced by a link (anyone can write the
    workspace) would make every write land wherever it points. WorkspaceError naming it."""
    if d.is_symlink():
        raise WorkspaceError(
            f"{str(d)!r} is a symbolic link; refusing to write through it (a link in the shared workspace can point "
            "anywhere): remove it, or use a fresh pbt.workspace"
        )
    return d


def _read_no_link(path: Path) -> bytes:
    """The file's bytes; OSError (ELOOP) when it is a symbolic link, which is never followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0 or -1, 0) signals a process group / every process: "alive" forever
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# The workspace
# ----------------------------------------------------------------------------------------------------------

def _remove_temp_files(d: Path, owner: str) -> list[str]:
    """Delete every ``.*.tmp`` in ``d`` (the caller knows no writer is active there); returns the names removed."""
    try:
        names = [n for n in os.listdir(d) if n.startswith(".") and n.endswith(".tmp")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        try:
            (d / name).unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("PBT workspace: cannot remove leftover temp file %s: %s", d / name, exc)
    if removed:
        log.info("PBT workspace: removed %d leftover temp file(s) of %s", len(removed), owner)
    return removed

class Workspace:
    """The shared folder of one PBT population (safe for concurrent members on one or many machines)."""

    def __init__(
        self, root: str | Path, *, stale_after_s: float = 3600.0, stale_interval_factor: float = 3.0
    ):
        self.root = Path(root)
        self.stale_after_s = float(stale_after_s)
        # staleness follows each member's pace: see PbtParams.stale_interval_factor
        self.stale_interval_factor = float(stale_interval_factor)
        # (path, mtime_ns, size) of files already warned about: one warning per bad file (per version of it)
        self._warned: set[tuple[str, int, int]] = set()
        self._warned_lines: set[tuple[int, str]] = set()

    # -- paths ------------------------------------------------------------------------------------------
    @staticmethod
    def resolve_root(train_dir: str, workspace: str) -> Path:
        """An absolute ``workspace`` (shared by members on several machines) wins, else train_dir/workspace."""
        if not str(workspace).strip():
            raise WorkspaceError(
                "pbt.workspace is empty: give a folder name (under train_dir) or an absolute path"
            )
        ws = Path(workspace).expanduser()
        return ws if ws.is_absolute() else Path(train_dir).expanduser() / ws

    def member_dir(self, member: int) -> Path:
        return self.root / f"{int(member):03d}"

    @property
    def lineage_path(self) -> Path:
        return self.root / "lineage.jsonl"

    @property
    def best_dir(self) -> Path:
        return self.root / "best"

    def members(self) -> list[int]:
        """Member folders present (``000``, ``001``, ...), sorted."""
        try:
            # never a symbolic link: a member folder pointing elsewhere would be read and written through
            names = [
                e.name
                for e in os.scandir(self.root)
                if e.is_dir(follow_symlinks=False) and _MEMBER_DIR_RE.match(e.name)
            ]
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names)

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
            m = _META_RE.match(e.name)
            if m:
                out.append((int(m.group(1)), e.path))  # str: Path objects only for files actually read
            elif e.name.startswith(".") and e.name.endswith(".tmp"):
                continue  # another process is writing it right now
            elif not (_PTH_RE.match(e.name) or _CLAIM_RE.match(e.name) or e.name == "claim.json"):
                self._warn_once(Path(e.path), "not a PBT workspace file (expected <iteration:06d>.yaml/.pth)")
        out.sort(key=lambda t: t[0], reverse=True)
        return out

    def _read_meta(self, path: Path, member: int, iteration: int) -> MemberMeta | None:
        """Parse and verify one metadata file; None (one warning) when it is not valid."""
        try:
            raw = _read_no_link(path)
        except FileNotFoundError:
            return None  # deleted between listing and reading
        except OSError as exc:
            self._warn_once(path, f"unreadable ({exc.strerror or exc})")
            return None
        try:
            data = yaml.load(raw.decode("utf-8"), Loader=_SafeLoader)
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

    def latest(self, member: int) -> MemberMeta | None:
        """The member's newest valid metadata (older ones are tried when the newest is corrupt)."""
        for it, p in self._meta_files(member):
            meta = self._read_meta(Path(p), member, it)
            if meta is not None:
                return meta
        return None

    def stale_limit_s(self, meta: MemberMeta) -> float:
        """max(stale_after_s, stale_interval_factor x the member's own last interval, ``extra["interval_s"]``)."""
        return _stale_limit_s(interval_of(meta), self.stale_after_s, self.stale_interval_factor)

    def is_stale(self, meta: MemberMeta, now: float | None = None) -> bool:
        """True when ``meta`` was written more than ``stale_limit_s(meta)`` seconds before ``now``."""
        now = _time.time() if now is None else now
        return now - meta.time > self.stale_limit_s(meta)

    def read_population(self, now: float | None = None, include_stale: bool = False) -> dict[int, MemberMeta]:
        """Newest valid metadata of every member; stale members are left out unless ``include_stale``."""
        now = _time.time() if now is None else now
        out: dict[int, MemberMeta] = {}
        for member in self.members():
            meta = self.latest(member)
            if meta is not None and (include_stale or not self.is_stale(meta, now)):
                out[member] = meta
        return out

    # -- checkpoints ------------------------------------------------------------------------------------
    def write_checkpoint(self, meta: MemberMeta, state: dict, claim_token: str = "") -> Path:
        """Write ``state`` as ``meta.checkpoint`` then ``meta`` as ``<iteration:06d>.yaml``; return the yaml path.
        Any OSError (e.g. a full disk) raises WorkspaceError and leaves no partial or orphan file behind.
        With ``claim_token``: WorkspaceError before writing anything when that token no longer holds the member."""
        if claim_token:
            self.check_claim(meta.member, claim_token)
        d = _no_link(self.member_dir(meta.member))
        pth = d / meta.checkpoint
        yml = d / f"{meta.iteration:06d}.yaml"
        payload = _torch_bytes(state)
        # the checkpoint's own digest rides in the (checksummed) metadata: torch.load accepts a checkpoint with
        # flipped tensor bytes silently (measured: one flipped byte loads as a changed weight), load_state does not
        meta = dataclasses.replace(
            meta, extra={**meta.extra, CHECKPOINT_DIGEST: hashlib.sha256(payload).hexdigest()}
        )
        meta_bytes = _dump_yaml(meta.to_dict())
        _atomic_write(pth, payload)
        try:
            _atomic_write(yml, meta_bytes)
        except BaseException:
            if not yml.exists():
                pth.unlink(missing_ok=True)  # no reader can reach it without its metadata
            raise
        return yml

    def load_state(self, meta: MemberMeta) -> dict:
        """Load meta's checkpoint weights-only on CPU; WorkspaceError when it is gone or unreadable."""
        path = self.member_dir(meta.member) / meta.checkpoint
        if path.is_symlink() or path.parent.is_symlink():
            raise WorkspaceError(f"checkpoint {str(path)!r} is or lies under a symbolic link; not followed")
        if not path.is_file():
            raise WorkspaceError(
                f"checkpoint {str(path)!r} of member {meta.member} iteration {meta.iteration} is gone "
                "(cleaned up or never written)"
            )
        try:
            raw = _read_no_link(path)
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
    def append_lineage(self, event: str, member: int, **fields: Any) -> dict:
        """Append one JSON line (one os.write to an O_APPEND fd) and return the record written."""
        if not isinstance(event, str) or not _EVENT_RE.match(event):
            raise ValueError(
                f"lineage event must be a lower-case name such as {LINEAGE_EVENTS}, got {event!r}"
            )
        record: dict[str, Any] = {
            "event": event,
            "member": int(member),
            "source": None,
            "source_iteration": None,
            "iteration": None,
            "frames": None,
            "old_params": {},
            "new_params": {},
            "changed": [],
            "mode": None,
            "time": _time.time(),
        }
        record.update(fields)
        record.pop("sha256", None)
        record = _plain_data(record, "lineage")
        problem = _lineage_problem(record)
        if problem:
            raise ValueError(f"lineage record: {problem}")
        # like metadata: a reader never acts on a line changed after it was written
        signed = {**record, "sha256": _digest(record)}
        line = (json.dumps(signed, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
        path = self.lineage_path
        try:
            self.root.mkdir(parents=True, exist_ok=True)
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
        return record

    def read_lineage(self) -> list[dict]:
        """Every valid lineage record, in file order; corrupt lines are skipped with one warning each."""
        try:
            raw = self.lineage_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("PBT workspace: cannot read %s: %s", self.lineage_path, exc)
            return []
        out = []
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
                why = (
                    "not a JSON object" if not isinstance(rec, dict) else _lineage_problem(rec, checked=True)
                )
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                why = f"not JSON ({type(exc).__name__})"
            if why:
                key = (lineno, hashlib.sha1(line).hexdigest())
                if key not in self._warned_lines:
                    self._warned_lines.add(key)
                    log.warning(
                        "PBT workspace: skipping corrupt line %d of %s: %s", lineno, self.lineage_path, why
                    )
                continue
            rec.pop("sha256")
            out.append(rec)
        return out

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

        for rec in self.read_lineage():
            src, src_it, who, it = (
                rec.get("source"),
                rec.get("source_iteration"),
                rec.get("member"),
                rec.get("iteration"),
            )
            if src != member or type(src_it) is not int:
                continue
            cur = current_iteration(who) if type(who) is int else None
            if cur is None or type(it) is not int or it >= cur - keep_last:
                protected.add(src_it)
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
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    if now - (d / name).stat().st_mtime > tmp_older_than_s:
                        (d / name).unlink()
                except OSError:
                    pass  # gone already, or another process's problem
        pths = sorted(((int(m.group(1)), d / e) for e in names if (m := _PTH_RE.match(e))), reverse=True)
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
        return _remove_temp_files(self.member_dir(member), f"member {member}")

    # -- best -------------------------------------------------------------------------------------------
    def export_best(
        self, meta: MemberMeta, state: dict, config: Mapping[str, Any], clean_temp: bool = False
    ) -> Path:
        """Write root/best/{checkpoint.pth, config.yaml, meta.yaml} atomically (meta last); return the folder.
        ``clean_temp`` (only while holding the best/ lock): first delete ``.*.tmp`` leftovers of exporters killed
        mid-write."""
        d = _no_link(self.best_dir)
        if clean_temp:
            _remove_temp_files(d, "best/")
        _atomic_write(d / "checkpoint.pth", _torch_bytes(state))
        _atomic_write(d / "config.yaml", _dump_yaml(_plain_data(config, "config")))
        _atomic_write(d / "meta.yaml", _dump_yaml(meta.to_dict()))
        return d

    # -- population and claims --------------------------------------------------------------------------
    def ensure_population(self, num_policies: int) -> None:
        """Create population.json (exactly once) or check that it agrees with ``num_policies``."""
        if isinstance(num_policies, bool) or not isinstance(num_policies, int) or num_policies < 1:
            raise WorkspaceError(f"num_policies must be an integer >= 1, got {num_policies!r}")
        path = self.root / "population.json"
        data = json.dumps({"num_policies": num_policies, "created": _time.time()}, sort_keys=True).encode()
        try:
            _atomic_write(path, data, exclusive=True)
            return
        except FileExistsError:
            pass
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

    def _claims(self, member: int) -> list[tuple[int, Path]]:
        """(generation, path) of the member's claim files, newest first."""
        d = self.member_dir(member)
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(((int(m.group(1)), d / n) for n in names if (m := _CLAIM_RE.match(n))), reverse=True)

    def _read_claim(self, path: Path) -> dict | None:
        """A claim's content; None (one warning) when it is not a claim (corrupt, garbled, foreign, a link)."""
        try:
            if path.is_symlink():
                raise OSError("a symbolic link")
            claim = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(path, f"corrupt claim ({type(exc).__name__}); it counts as free")
            return None
        if not (isinstance(claim, dict) and {"pid", "host", "time", "token"} <= set(claim)):
            self._warn_once(path, "foreign claim file; it counts as free")
            return None
        return claim

    def current_claim(self, member: int) -> dict | None:
        """The member's newest claim (None: never claimed, released, or the newest one is unreadable)."""
        claims = self._claims(member)
        if not claims:
            return None
        claim = self._read_claim(claims[0][1])
        return None if claim is None or claim.get("released") else claim

    def claim(self, member: int, num_policies: int) -> str:
        """Record that this process runs ``member``; return the claim token.

        Refused (WorkspaceError) when ``member`` is outside [0, num_policies) or another live process holds it:
        same host and its pid is alive (and not ours: os.execv keeps the pid), or another host and the claim or
        the member's newest metadata is newer than ``stale_after_s``. Dead or stale claims are taken over.

        Race-free on one host and on NFS: claims are generations ``claim.<gen>.json`` and the newest one holds.
        A process that judged generation g free (none, dead, stale, released, unreadable) creates g+1 by an
        exclusive hard link of its fsync'ed temp file (``atomic_write(exclusive=True)``; link() is atomic on NFS
        too), which exactly one of any number of concurrent processes gets; the others refuse. A claim is never
        overwritten, so a process that read an old state cannot replace a newer claim. Holders re-check their
        token before each write (``check_claim``)."""
        if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < num_policies:
            raise WorkspaceError(
                f"pbt.policy_idx={member!r} is out of range: valid values are 0..{num_policies - 1} "
                f"(num_policies={num_policies})"
            )
        _no_link(self.member_dir(member))
        host, pid, now = socket.gethostname(), os.getpid(), _time.time()
        job = os.environ.get("SLURM_JOB_ID", "")
        claims = self._claims(member)
        gen = claims[0][0] if claims else -1
        old = self._read_claim(claims[0][1]) if claims else None
        if (
            old is not None
            and not old.get("released")
            and not (old.get("host") == host and old.get("pid") == pid)
        ):
            if job and old.get("job") == job:
                # the same scheduler job started again (SLURM requeue, possibly on another node): the scheduler
                # ended the previous run of this job, so its claim is ours to take over
                live, how = False, f"SLURM job {job} was requeued"
            elif old.get("host") == host:
                live = type(old.get("pid")) is int and _pid_alive(old["pid"])
                how = f"process {old.get('pid')} on this host is alive"
            else:
                meta = self.latest(member)
                t = old.get("time")
                claimed_at = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0
                last = max(claimed_at, meta.time if meta else 0.0)
                live = now - last <= self.stale_after_s
                how = (
                    f"host {shown(old.get('host'))!r} was active {now - last:.0f} s ago "
                    f"(< stale_after_s={self.stale_after_s:g})"
                )
            if live:
                raise WorkspaceError(
                    f"duplicate member: pbt.policy_idx={member} is already running ({how}); give every member a "
                    f"unique policy_idx in 0..{num_policies - 1}, or remove {str(claims[0][1])!r} if that "
                    "process is gone"
                )
            log.warning("PBT workspace: taking over stale claim of member %d (%s)", member, shown(old))
        token = uuid.uuid4().hex
        data = json.dumps(
            {"pid": pid, "host": host, "time": now, "token": token, "job": job, "generation": gen + 1},
            sort_keys=True,
        ).encode()
        try:
            _atomic_write(self._claim_path(member, gen + 1), data, exclusive=True)
        except FileExistsError:
            raise WorkspaceError(
                f"duplicate member: another process claimed pbt.policy_idx={member} at the same moment"
            ) from None
        self._drop_old_claims(member, gen + 1)
        return token

    def _claim_path(self, member: int, gen: int) -> Path:
        return self.member_dir(member) / f"claim.{gen:06d}.json"

    def _drop_old_claims(self, member: int, newest: int) -> None:
        """Remove generations below ``newest`` (never the newest: the counter must only grow)."""
        for gen, path in self._claims(member):
            if gen < newest:
                try:
                    path.unlink()
                except OSError:
                    pass  # another process removed it already

    def check_claim(self, member: int, token: str) -> None:
        """WorkspaceError unless ``token`` still holds the member's newest claim (called before every write:
        a process that was judged stale and taken over must stop writing as that member)."""
        claims = self._claims(member)
        claim = self._read_claim(claims[0][1]) if claims else None
        if claim is None or claim.get("token") != token or claim.get("released"):
            holder = "nobody" if claim is None else shown({k: claim.get(k) for k in ("host", "pid", "job")})
            raise WorkspaceError(
                f"member {member}: this process no longer holds its claim (now held by {holder}); another "
                "process took the member over, so this one stops writing to the workspace"
            )

    def release_claim(self, member: int, token: str) -> None:
        """Release the member's claim if it is still ours (normal end of training): a newer generation marked
        ``released`` (the generation counter never goes back, see ``claim``)."""
        claims = self._claims(member)
        if not claims:
            return
        gen, path = claims[0]
        claim = self._read_claim(path)
        if claim is None or claim.get("token") != token:
            return
        data = json.dumps({**claim, "released": True, "time": _time.time()}, sort_keys=True).encode()
        try:
            _atomic_write(self._claim_path(member, gen + 1), data, exclusive=True)
        except FileExistsError:
            return  # taken over at this moment: not ours to release any more
        self._drop_old_claims(member, gen + 1)
