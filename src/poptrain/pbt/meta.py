"""What a member writes about itself: ``MemberMeta`` (one metadata file) and the plain values it may hold.

Metadata is read by every other member, so it is checked strictly both ways: ``MemberMeta(...)`` normalises
numpy / tensor numbers and refuses wrong types at write time, ``MemberMeta.from_dict`` accepts only the exact
key set with exact types and a matching sha256 (a corrupt, truncated or edited file fails, and the reader skips
it). Like every checksum here it catches corruption, not forgery (``poptrain.untrusted`` filters what acts).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from poptrain.errors import WorkspaceError

#: ``MemberMeta.extra`` key of the sha256 of the checkpoint bytes (set by ``Workspace.write_checkpoint``)
CHECKPOINT_DIGEST = "checkpoint_sha256"


# ----------------------------------------------------------------------------------------------------------
# Plain values: what may go into metadata, lineage lines and checkpoints
# ----------------------------------------------------------------------------------------------------------
def plain_scalar(value: Any, where: str) -> Any:
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


def plain_data(value: Any, where: str) -> Any:
    """Recursively convert to JSON/YAML-safe data (dict with str keys, list, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return plain_scalar(value, where)


def to_float(value: Any) -> float:
    """A plain Python float from a float, int, numpy scalar or one-element tensor/array (NaN stays NaN)."""
    out = plain_scalar(value, "objective")
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
            value = plain_scalar(getattr(self, name), name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            set_(self, name, value)
        set_(self, "time", float(plain_scalar(self.time, "time")))
        set_(self, "params", plain_data(self.params, "params"))
        set_(self, "extra", plain_data(self.extra, "extra"))
        set_(self, "overrides", list(self.overrides))
        if self.parent is not None:
            set_(self, "parent", plain_data(self.parent, "parent"))
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
        return digest(self._fields_dict())

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``sha256`` (what goes to disk)."""
        d = self._fields_dict()
        d["sha256"] = digest(d)
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
        written = d["sha256"]
        if not isinstance(written, str) or written != digest(fields):
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


def digest(fields: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical JSON (sorted keys, no spaces) of ``fields``."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
