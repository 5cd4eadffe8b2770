"""Time-sliced PBT members: one process (a *slot*) hosts several population members in turn.

    python -m poptrain.pbt.slots --slot 0 --member pbt.policy_idx=0 seed=1 experiment=m0 \\
        --member pbt.policy_idx=2 seed=3 experiment=m2 -- task=AcrobotHard pbt=pbt_default ...

N members on K < N slots (``poptrain-launch ... --backend processes --slots K``, or one SLURM job per slot):
a slot builds one rl_games agent and trains its members one PBT interval each, round-robin. At a switch it
keeps the outgoing member's state in memory and loads the incoming one's:

- weights and optimizer state, epoch and frame counters, best reward (``get/set_full_state_weights``);
- hyperparameters: every mutable key must be live (agent or task, ``poptrain.pbt.live``), applied in place;
- RNG state (torch, numpy, random) and rl_games' episode meters and per-env trackers;
- env state: every tensor of a built-in task (``VecTask``) plus its generator state; tasks that cannot hand
  out their state (Gym, Playground: jax buffers are donated) are reset instead;
- the TensorBoard writer and experiment folder, so every member logs to its own folder as if it ran alone.

Members advance in generations: a member's PBT decision for the checkpoint it wrote at ``F`` frames is made
when it is switched in again, against every member's metadata *at F frames* (waiting, in the workspace, for
members of other slots to get there; members older than ``stale_after_s`` count as absent). So every decision
compares members at the same frame count, as if all N had run at once. A fresh member starts from the slot's
initial weights with its own seed's RNG and env streams and its own initial mutation.

A slot that dies (SIGKILL, node failure) is started again with the same command: each of its members resumes
from its own newest checkpoint (``initial_pbt_check``), exactly like a member process. While it is down, the
other slots wait at the next generation (up to ``stale_after_s``).

``<workspace>/slots/slot_<k>.json`` says which member runs and which are parked (``poptrain status`` reads it);
``<workspace>/slots/decisions.jsonl`` records every decision with the frame count of each candidate.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from poptrain import api
from poptrain.checkpoints import atomic_write
from poptrain.errors import ConfigError, PoptrainError
from poptrain.pbt import live
from poptrain.pbt import observer as pbt_observer
from poptrain.pbt.selection import candidates_from_metas
from poptrain.pbt.workspace import MemberMeta

log = logging.getLogger(__name__)

#: Member keys a slot command may set per member (everything else is shared by the population).
MEMBER_KEYS = ("pbt.policy_idx", "seed", "experiment")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")
#: How often a member waiting for its generation polls the workspace (a poll reads N small YAML files).
POLL_S = 0.1


# ---- the slot command -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotSpec:
    """One slot: its index, its members' own overrides, and the overrides they share."""

    slot: int
    members: tuple[tuple[str, ...], ...]
    shared: tuple[str, ...]


def _check_member_override(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or key not in MEMBER_KEYS:
        raise ConfigError(
            f"slot member override {item!r} is invalid; valid: {', '.join(k + '=...' for k in MEMBER_KEYS)}"
        )
    if key in ("pbt.policy_idx", "seed") and not re.fullmatch(r"-?[0-9]+", value):
        raise ConfigError(f"slot member override {item!r}: {key} must be an integer")
    if key == "experiment" and not _NAME_RE.match(value):
        raise ConfigError(
            f"slot member override {item!r}: experiment must be letters, digits, '.', '_', '+', '-'"
        )
    return key, value


def parse_slot_argv(argv: Sequence[str]) -> SlotSpec:
    """``--slot K (--member k=v ...)+ -- shared overrides``; ConfigError names the first bad element."""
    argv = list(argv)
    if "--" not in argv:
        raise ConfigError(
            "slot command needs '--' before the shared overrides: --slot K --member ... -- task=..."
        )
    cut = argv.index("--")
    head, shared = argv[:cut], argv[cut + 1 :]
    slot: int | None = None
    members: list[list[str]] = []
    i = 0
    while i < len(head):
        if head[i] == "--slot" and i + 1 < len(head) and re.fullmatch(r"[0-9]+", head[i + 1]):
            slot = int(head[i + 1])
            i += 2
        elif head[i] == "--member":
            members.append([])
            i += 1
        elif members and not head[i].startswith("--"):
            _check_member_override(head[i])
            members[-1].append(head[i])
            i += 1
        else:
            raise ConfigError(
                f"slot argument {head[i]!r} is invalid; valid: --slot <int>, --member key=value ..."
            )
    if slot is None:
        raise ConfigError("slot command needs --slot <int>")
    if not members:
        raise ConfigError("slot command needs at least one --member pbt.policy_idx=<int> ...")
    seen: set[str] = set()
    for m in members:
        idx = [v for v in m if v.startswith("pbt.policy_idx=")]
        if len(idx) != 1:
            raise ConfigError(f"slot member {m} must set pbt.policy_idx exactly once")
        if idx[0] in seen:
            raise ConfigError(f"slot lists {idx[0]} twice")
        seen.add(idx[0])
    for item in shared:
        if item.split("=", 1)[0] in MEMBER_KEYS:
            raise ConfigError(f"shared override {item!r} is set per member in a slot (--member {item})")
    return SlotSpec(slot, tuple(tuple(m) for m in members), tuple(shared))


def slot_argv(python: str, slot: int, members: Sequence[Sequence[str]], shared: Sequence[str]) -> list[str]:
    """The argv of one slot process (the inverse of ``parse_slot_argv``)."""
    argv = [python, "-m", "poptrain.pbt.slots", "--slot", str(int(slot))]
    for m in members:
        argv += ["--member", *m]
    return [*argv, "--", *shared]


def group_members(argvs: Sequence[Sequence[str]], num_slots: int) -> list[list[str]]:
    """Turn N member commands (``... -m poptrain.train <overrides>``) into ``num_slots`` slot commands.

    Members are dealt round-robin (member i to slot i mod K). Every member command must be the same
    ``poptrain.train`` command except for the per-member keys (``MEMBER_KEYS``); anything else differing
    is a ConfigError naming it (such a population cannot share one agent).
    """
    if num_slots < 1:
        raise ConfigError(f"--slots {num_slots}: valid: an integer >= 1")
    if not argvs:
        return []
    prefixes, members, shared_sets = [], [], []
    for argv in argvs:
        argv = list(argv)
        if "poptrain.train" not in argv:
            raise ConfigError(f"time-sliced slots run poptrain.train members; got {' '.join(argv[:4])!r}")
        at = argv.index("poptrain.train") + 1
        prefixes.append(argv[: at - 1])
        own = [a for a in argv[at:] if a.split("=", 1)[0] in MEMBER_KEYS]
        rest = [a for a in argv[at:] if a.split("=", 1)[0] not in MEMBER_KEYS]
        members.append(own)
        shared_sets.append(rest)
    for i, (prefix, rest) in enumerate(zip(prefixes, shared_sets, strict=True)):
        if prefix != prefixes[0] or rest != shared_sets[0]:
            diff = sorted(set(rest) ^ set(shared_sets[0])) or prefix
            raise ConfigError(f"member command #{i} differs from #0 in {diff}; slots need one shared command")
    if not all(any(a.startswith("pbt.policy_idx=") for a in m) for m in members):
        raise ConfigError("time-sliced slots need PBT members: every command must set pbt.policy_idx")
    python = prefixes[0][0] if prefixes[0] else sys.executable
    k = min(num_slots, len(members))
    return [slot_argv(python, s, members[s::k], shared_sets[0]) for s in range(k)]


def plan_slots(planned: Sequence[Any], num_slots: int) -> list[Any]:
    """The launcher's planned runs (``PlannedExperiment``, one per member) as ``num_slots`` slot runs per
    population (the members of one experiment folder), named ``slot_<k>``, each logging to its own folder."""
    from dataclasses import replace

    groups: dict[str, list[Any]] = {}
    for p in planned:
        groups.setdefault(p.experiment_dir, []).append(p)
    out = []
    for members in groups.values():
        for k, argv in enumerate(group_members([p.argv for p in members], num_slots)):
            out.append(replace(members[0], argv=argv, name=f"slot_{k}", params={"slot": k}))
    return out


# ---- one member's state while parked ------------------------------------------------------------------
@dataclass
class Member:
    """A hosted member: its config, its PBT observer, and what the agent holds of it while it runs."""

    cfg: DictConfig
    observer: SlotMemberObserver
    seed: int
    experiment_dir: Path
    weights: dict[str, Any] | None = None  # get_full_state_weights (cloned), None until first parked/resumed
    env: dict[str, Any] | None = None  # task tensors + generator + rl_games per-env trackers
    rng: tuple[Any, ...] | None = None
    meters: dict[str, Any] = field(default_factory=dict)
    writer: Any = None
    pending_frames: int | None = None  # a checkpoint written at these frames still waits for its decision
    finished: bool = False
    final_frames: int | None = None  # frames when it finished (in this process)
    frames: int = 0  # frames trained so far (updated when parked)
    live_values: dict[str, Any] | None = (
        None  # mutable keys as the agent last saw them (None: use its params)
    )

    @property
    def index(self) -> int:
        return self.observer.member


class SlotMemberObserver(pbt_observer.PbtAlgoObserver):
    """A member's PBT observer inside a slot: writes its checkpoint at each interval, decides later.

    The parent's iteration writes the checkpoint and then stops where a member on its last epoch stops
    (``_budget_spent`` is True while ``deferring``): the slot makes the decision when this member is switched
    in again, once every member has reached the same frame count.
    """

    deferring = True
    epoch_budget = -1
    frame_budget = -1

    def _budget_spent(self, frames: int) -> bool:
        if self.deferring:
            return True
        return self.own_budget_spent(frames)

    def own_budget_spent(self, frames: int) -> bool:
        epochs = int(self.algo.epoch_num)
        return (self.epoch_budget != -1 and epochs >= self.epoch_budget) or (
            self.frame_budget != -1 and frames >= self.frame_budget
        )


_METERS = ("game_rewards", "game_shaped_rewards", "game_lengths")
_TRACKERS = ("current_rewards", "current_shaped_rewards", "current_lengths", "dones")


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return copy.deepcopy(value)


def task_state(task: Any) -> dict[str, Any] | None:
    """Every tensor of a built-in task plus its generator state; None for tasks that cannot hand it out."""
    from poptrain.tasks.base import VecTask

    if not isinstance(task, VecTask):
        return None
    tensors = {k: v.clone() for k, v in vars(task).items() if isinstance(v, torch.Tensor)}
    return {"tensors": tensors, "generator": task.generator.get_state()}


def set_task_state(task: Any, state: dict[str, Any]) -> None:
    """Put ``task_state`` back: in place where shapes match (rl_games holds some of these tensors)."""
    for name, saved in state["tensors"].items():
        current = getattr(task, name, None)
        if (
            isinstance(current, torch.Tensor)
            and current.shape == saved.shape
            and current.dtype == saved.dtype
        ):
            current.copy_(saved)
        else:
            setattr(task, name, saved.clone())
    task.generator.set_state(state["generator"])


def _write_bytes(f: Any, data: bytes) -> None:
    f.write(data)


class StatusWriter:
    """Writes the newest slot status from a background thread, atomically but without fsync.

    The status is display-only and rewritten at every switch. Written in the switch itself it cost more than
    the switch: 58 ms of fsync plus 14-35 ms of rename in a 116 ms median switch at 4,096 envs on this shared
    disk (profiled with cProfile), against ~4 ms for parking and loading the member.
    """

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._data: bytes | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="slot-status", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        with self._cond:
            self._data = data  # only the newest matters: an older one not yet written is dropped
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._data is None and not self._stop:
                    self._cond.wait()
                data, self._data = self._data, None
                if data is None:
                    return
            try:
                atomic_write(self.path, functools.partial(_write_bytes, data=data), durable=False)
            except OSError as exc:  # the status is for display: training goes on, say why it is missing
                log.warning("cannot write slot status %s: %s", self.path, exc)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()


class SlotRunner:
    """Hosts ``cfgs`` (one composed config per member) in one rl_games agent; see the module docstring."""

    def __init__(self, cfgs: Sequence[DictConfig], slot: int):
        if not cfgs:
            raise ConfigError("a slot needs at least one member")
        self.slot = int(slot)
        self.members: list[Member] = []
        for cfg in cfgs:
            if not (cfg.get("pbt") and cfg.pbt.get("enabled", False)):
                raise ConfigError(
                    "time-sliced slots host PBT members: set pbt=pbt_default (pbt.enabled=True)"
                )
            # claim, resume or initial mutation, then the observer: as a member process does
            observer = pbt_observer.member_observer(cfg, SlotMemberObserver)
            name = str(cfg.train.params.config.full_experiment_name)
            self.members.append(Member(cfg, observer, int(cfg.seed), Path(str(cfg.train_dir)) / name))
        self.ws = self.members[0].observer.ws
        self.settings = self.members[0].observer.settings
        self.current: Member | None = None
        self.algo: Any = None
        self.switches = 0
        self.switch_s: list[float] = []  # wall time of every member switch (benchmark d)
        self.wait_s = 0.0  # time spent waiting for other slots at a generation
        self.train_s = 0.0  # time with a member switched in and training (its own time, as if it ran alone)
        self._in_since = 0.0
        self._template: dict[str, Any] = {}
        self._t0 = time.perf_counter()
        self.status_path = self.ws.layout.slot_status_path(self.slot)
        self.status_writer = StatusWriter(self.status_path)
        self.decisions_path = self.ws.layout.slot_decisions_path()

    # ---- rl_games hooks (through SlotObserver) -------------------------------------------------------
    def after_init(self, algo: Any) -> None:
        self.algo = algo
        # the slot's wall time counts from here: startup (imports, agent build) is every member process's too
        self._t0 = time.perf_counter()
        for m in self.members:
            m.observer.after_init(algo)
            not_live = [k for k in m.observer.keys if not live.is_live(k, algo)]
            if not_live:
                raise ConfigError(
                    f"time-sliced members need every mutable key live (a restart would restart the whole slot); "
                    f"not live here: {not_live}"
                )
            m.observer.epoch_budget, m.observer.frame_budget = int(algo.max_epochs), int(algo.max_frames)
        if int(algo.max_epochs) == -1 and int(algo.max_frames) == -1:
            raise ConfigError("time-sliced members need a budget: max_iterations or max_frames")
        # the slot owns the loop's end (rl_games would stop after the first member's budget) ...
        algo.max_epochs, algo.max_frames = -1, -1
        # ... and rl_games' best-reward saving, which would mix members' rewards and weights
        algo.save_best_after = 1 << 62
        self._template = {
            "weights": self._weights(),
            "meters": {name: copy.deepcopy(getattr(algo, name)) for name in _METERS if hasattr(algo, name)},
        }
        from torch.utils.tensorboard import SummaryWriter

        for m in self.members:
            for sub in ("nn", "summaries"):
                (m.experiment_dir / sub).mkdir(parents=True, exist_ok=True)
            m.writer = SummaryWriter(str(m.experiment_dir / "summaries"))
            m.observer.writer = m.writer
            m.meters = copy.deepcopy(self._template["meters"])
            latest = self.ws.latest(m.index)
            if latest is not None:  # resumed: weights, optimizer and counters from its own newest checkpoint
                m.weights = self.ws.load_state(latest)
                m.weights.setdefault("epoch", latest.epoch)
                m.weights.setdefault("frame", latest.frames)
                m.frames = int(m.weights["frame"])
                m.finished = bool(latest.finished)
        waiting = [m for m in self.members if not m.finished]
        first = min(waiting, key=lambda m: m.frames) if waiting else None
        if first is None:
            log.info("slot %d: every member already finished", self.slot)
            algo.max_epochs = 0
            return
        self._switch_in(first, before_train=True)
        self._in_since = time.perf_counter()

    def process_infos(self, infos: Any, done_indices: torch.Tensor) -> None:
        if self.current is not None:
            self.current.observer.process_infos(infos, done_indices)

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        m = self.current
        if m is None:
            return
        before = m.observer.iteration
        m.observer.after_print_stats(frame, epoch_num, total_time)
        wrote = m.observer.iteration != before
        frames = int(self.algo.frame)
        if m.observer.own_budget_spent(frames):
            m.observer.finish()  # final metadata, best/ export, claim released (this member is switched in)
            m.finished, m.pending_frames, m.final_frames = True, None, frames
        elif wrote:
            m.pending_frames = frames
        if m.finished or wrote:
            self._next()

    # ---- switching -----------------------------------------------------------------------------------
    def _weights(self) -> dict[str, Any]:
        state = self.algo.get_full_state_weights()
        state.pop("env_state", None)
        # the adaptive schedule moves lr every epoch: it is the member's, even when lr is not a mutable key
        state["last_lr"] = float(self.algo.last_lr)
        return _clone(state)

    def _park(self, m: Member) -> None:
        algo = self.algo
        m.weights = self._weights()
        m.frames = int(algo.frame)
        # as the agent sees them, not as last mutated: the adaptive schedule moves learning_rate every epoch
        m.live_values = api.get_params(algo, [k for k in m.observer.keys if live.is_live(k, algo)])
        task = live.task_of(algo)
        env = task_state(task)
        if env is not None:
            env["obs"] = _clone(algo.obs)
            env["trackers"] = {n: _clone(getattr(algo, n)) for n in _TRACKERS if hasattr(algo, n)}
        m.env = env
        m.rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        m.meters = {name: getattr(algo, name) for name in _METERS if hasattr(algo, name)}

    def _switch_in(self, m: Member, before_train: bool = False) -> None:
        algo = self.algo
        weights = m.weights if m.weights is not None else self._template["weights"]
        algo.set_full_state_weights(weights, set_epoch=True)
        if m.weights is None:
            algo.epoch_num, algo.frame = 0, 0
        # a workspace checkpoint (resumed member) has no last_lr: its optimizer's lr is the member's
        algo.last_lr = float(weights.get("last_lr", algo.optimizer.param_groups[0]["lr"]))
        m.weights = None  # the agent holds it now (the optimizer may alias these tensors)
        for name, meter in m.meters.items():
            setattr(algo, name, meter)
        # hyperparameters: every mutable key is live (checked at start)
        values = m.live_values if m.live_values is not None else m.observer.params
        api.set_params(algo, {k: v for k, v in values.items() if live.is_live(k, algo)})
        m.live_values = None
        task = live.task_of(algo)
        if m.rng is not None:
            torch.set_rng_state(m.rng[0])
            np.random.set_state(m.rng[1])
            random.setstate(m.rng[2])
        else:  # first time in: this member's own seed, as its own process would have
            torch.manual_seed(m.seed)
            np.random.seed(m.seed & 0xFFFF_FFFF)
            random.seed(m.seed)
        if m.env is not None:
            set_task_state(task, m.env)
            algo.obs = m.env["obs"]
            for name, saved in m.env["trackers"].items():
                getattr(algo, name).copy_(saved)
        elif task is not None:
            generator = getattr(task, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(m.seed & 0xFFFF_FFFF)
            if not before_train:  # rl_games resets the env itself when training starts
                algo.obs = algo.env_reset()
                for name in _TRACKERS:  # as rl_games' init_tensors leaves them: zeros, dones all 1
                    if hasattr(algo, name):
                        getattr(algo, name).fill_(1 if name == "dones" else 0)
        m.env = None
        algo.writer = m.writer
        algo.experiment_dir = str(m.experiment_dir)
        algo.nn_dir = str(m.experiment_dir / "nn")
        algo.summaries_dir = str(m.experiment_dir / "summaries")
        algo.experiment_name = m.experiment_dir.name
        self.current = m
        self._write_status()

    def _next(self) -> None:
        out = self.current
        assert out is not None
        t0 = time.perf_counter()
        self.train_s += t0 - self._in_since
        out.frames = int(self.algo.frame)
        order = self.members[self.members.index(out) + 1 :] + self.members[: self.members.index(out) + 1]
        waiting = [m for m in order if not m.finished]
        # the member furthest behind goes next (round-robin among equals): after a crash, members resumed from
        # older checkpoints catch up before anyone waits for them, so a slot never waits on its own members
        nxt = min(waiting, key=lambda m: m.frames) if waiting else None
        if nxt is None:
            self.current = None
            self.algo.max_epochs = 1  # rl_games ends the loop after this epoch's checks
            self._write_status()
            return
        if nxt is not out:
            if not out.finished:
                self._park(out)
            self._switch_in(nxt)
            self.switches += 1
            self.switch_s.append(time.perf_counter() - t0)
        if nxt.pending_frames is not None:
            self._decide(nxt, nxt.pending_frames)
            nxt.pending_frames = None
        self._in_since = time.perf_counter()

    # ---- generations ---------------------------------------------------------------------------------
    def _metas_at(self, frames: int) -> dict[int, MemberMeta]:
        """Every member's metadata at exactly ``frames``, waiting for members that are behind and alive."""
        n = int(self.settings.num_policies)
        t0 = time.perf_counter()
        while True:
            found: dict[int, MemberMeta] = {}
            behind = []
            now = time.time()
            for j in range(n):
                history = self.ws.member_history(j)
                at = [h for h in history if h.frames == frames]
                if at:
                    found[j] = min(
                        at, key=lambda h: (h.finished, h.iteration)
                    )  # the interval's own checkpoint
                    continue
                newest = history[-1] if history else None
                alive = newest is None or not self.ws.is_stale(newest, now)
                if alive and (newest is None or (newest.frames < frames and not newest.finished)):
                    behind.append(j)
            if not behind:
                self.wait_s += time.perf_counter() - t0
                return found
            time.sleep(POLL_S)

    def _decide(self, m: Member, frames: int) -> None:
        obs = m.observer
        metas = self._metas_at(frames)
        obs.deferring = False
        try:
            # ages relative to the newest metadata of this generation: a parked member's checkpoint is as old
            # as one round of its slot, which must not read as stale
            now = max(meta.time for meta in metas.values())
            candidates = candidates_from_metas(metas.values(), now)
            if frames < int(self.settings.initial_delay) or obs.own_budget_spent(frames):
                action, leader = "keep", None
            else:
                decision = obs.decide(candidates)
                action, leader = decision.action, decision.leader
                log.info(
                    "PBT member %d (slot %d) frames %d: %s %s",
                    obs.member,
                    self.slot,
                    frames,
                    action,
                    decision.reason,
                )
            self._record(m, frames, candidates, action, leader)
            if action == "exploit" and leader is not None and leader in metas:
                obs.exploit(metas[leader], frames)
            elif action == "mutate":
                obs.mutate_own(frames)
            self.ws.cleanup(obs.member, keep_last=int(self.settings.keep_checkpoints))
        finally:
            obs.deferring = True

    def _record(self, m: Member, frames: int, candidates: list[Any], action: str, leader: int | None) -> None:
        line = (
            json.dumps(
                {
                    "slot": self.slot,
                    "member": m.index,
                    "frames": frames,
                    "action": action,
                    "leader": leader,
                    "candidate_frames": {str(c.member): c.frames for c in candidates},
                    "time": time.time(),
                },
                sort_keys=True,
            )
            + "\n"
        )
        self.decisions_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.decisions_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(
                fd, line.encode()
            )  # one write on an O_APPEND fd: lines of several slots never interleave
        finally:
            os.close(fd)

    def _write_status(self) -> None:
        running = self.current.index if self.current is not None else None
        status = {
            "slot": self.slot,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": time.time(),
            "members": [m.index for m in self.members],
            "running": running,
            "parked": [m.index for m in self.members if not m.finished and m.index != running],
            "finished": [m.index for m in self.members if m.finished],
            "switches": self.switches,
            "switch_s": round(sum(self.switch_s), 6),
            "wait_s": round(self.wait_s, 6),
            "wall_s": round(time.perf_counter() - self._t0, 6),
            "train_s": round(self.train_s, 6),
        }
        self.status_writer.put((json.dumps(status, sort_keys=True) + "\n").encode())

    def close(self) -> None:
        """Write the final status and stop the status writer."""
        self._write_status()
        self.status_writer.close()


class SlotObserver:
    """The rl_games observer of a slot: forwards every hook to the SlotRunner."""

    def __init__(self, runner: SlotRunner):
        self.runner = runner

    def before_init(self, base_name: str, config: Any, experiment_name: str) -> None:
        pass

    def after_init(self, algo: Any) -> None:
        self.runner.after_init(algo)

    def process_infos(self, infos: Any, done_indices: torch.Tensor) -> None:
        self.runner.process_infos(infos, done_indices)

    def after_steps(self) -> None:
        pass

    def after_clear_stats(self) -> None:
        pass

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        self.runner.after_print_stats(frame, epoch_num, total_time)


# ---- entry ----------------------------------------------------------------------------------------------
def compose_members(spec: SlotSpec) -> list[DictConfig]:
    """One composed config per member: shared overrides + the member's own, through ``config.compose`` (the
    CLI's and the api's one compose path: override check, Hydra, validation, seed drawn when -1)."""
    from poptrain.config import compose

    return [compose(*spec.shared, *member) for member in spec.members]


def run_slot(spec: SlotSpec) -> int:
    """Train every member of the slot to its budget; returns the exit code."""
    from poptrain.build import make_runner, setup_torch

    cfgs = compose_members(spec)  # seeds already drawn (config.prepare)
    runner_state = SlotRunner(cfgs, spec.slot)
    # the agent is built from the first member's config, in the slot's own folder
    base = copy.deepcopy(cfgs[0])
    OmegaConf.update(base, "train.params.config.full_experiment_name", f"slot_{spec.slot}", merge=False)
    base.checkpoint = ""
    setup_torch(base)
    runner = make_runner(base, [SlotObserver(runner_state)])
    try:
        runner.run({"train": True, "play": False})
    finally:
        runner_state.close()
    switch = runner_state.switch_s
    median_ms = 1000 * sorted(switch)[len(switch) // 2] if switch else math.nan
    print(
        f"slot: slot={spec.slot} members={','.join(str(m.index) for m in runner_state.members)} "
        f"frames={','.join(str(m.final_frames) for m in runner_state.members)} switches={runner_state.switches} "
        f"switch_median_ms={median_ms:.3f} wait_s={runner_state.wait_s:.3f}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    try:
        return run_slot(parse_slot_argv(sys.argv[1:] if argv is None else argv))
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
