"""The PBT observer: an rl_games AlgoObserver that makes one training process a population member.

Per finished episode it records the objective (``pbt.objective`` key in the env infos; else the task's
``true_objective``; else the episode return) into a window. At the end of every epoch whose frame count has
crossed the next ``interval_steps`` mark it saves a checkpoint + metadata to the shared workspace, reads the
other members' metadata (never their weights), asks ``selection.decide`` what to do and then:

- keep: nothing;
- mutate: new values of its own hyperparameters;
- exploit: copy the leader's weights and optimizer state, mutate the leader's hyperparameters.

A change whose parameters can all change live (``poptrain.pbt.live``) is applied in process (hot swap, at
an epoch boundary: the next rollout already uses the new weights). Otherwise the member restarts itself
with os.execv, new values as Hydra overrides, the copied checkpoint and its own frame/epoch counters.

``initial_pbt_check(cfg, settings, workspace)`` runs before the rl_games Runner is built: it claims the member
slot, resumes a member that was started again (crash, SLURM requeue) from its newest checkpoint, and at a
member's very first start (except member 0) mutates its initial hyperparameters in the config (exactly once).
It returns what it decided, a ``StartInfo``, which the observer takes explicitly:
``PbtAlgoObserver(cfg, settings, workspace, start)``; ``member_observer(cfg)`` does both steps.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import fcntl
import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from omegaconf import DictConfig, OmegaConf
from rl_games.common.algo_observer import AlgoObserver

from poptrain import api
from poptrain.build import agent_state
from poptrain.checkpoints import atomic_torch_save
from poptrain.errors import ConfigError, WorkspaceError
from poptrain.overrides import lookup
from poptrain.pbt import live, search
from poptrain.pbt.layout import checkpoint_name
from poptrain.pbt.lineage import LineageEvent
from poptrain.pbt.mutation import mutate
from poptrain.pbt.params import PbtSettings, rule_choice
from poptrain.pbt.restart import pop_restart_state, restart_argv, restart_process
from poptrain.pbt.selection import (
    Candidate,
    Decision,
    candidates_from_metas,
    decide,
    population_counts,
    records_at,
)
from poptrain.pbt.selection import rank as rank_candidates
from poptrain.pbt.workspace import MemberMeta, Workspace
from poptrain.untrusted import is_number, safe_params, shown

log = logging.getLogger(__name__)


@dataclass
class StartInfo:
    """How this member process started: ``initial_pbt_check`` returns it, the observer takes it. An os.execv
    restart carries it over as ``restart_state()`` and the new process reads it back with ``from_restart_state``."""

    kind: str = "fresh"  # fresh | restart | resume
    iteration: int = 0
    restarts: int = 0
    exploits: int = 0
    parent: dict[str, int] | None = None
    decision_time: float | None = None  # wall time of the decision that caused this restart
    event: str = ""  # lineage event of that decision (exploit / mutate)
    objective: float = math.nan  # objective carried over until this process has finished episodes
    claim_token: str = ""  # this process' claim on the member slot (released when training ends normally)
    bookkeeping_s: float = 0.0  # PBT time of earlier processes of this member (restarts), for the benchmark
    process_s: float = 0.0  # wall time of earlier processes of this member (after_init to restart)
    finished: MemberMeta | None = None  # set when the member had already finished: nothing left to train

    def restart_state(self) -> dict[str, Any]:
        """The fields a restarted process carries over (JSON-plain; the claim and ``finished`` stay behind)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in _RESTART_FIELDS}

    @classmethod
    def from_restart_state(cls, state: Mapping[str, Any], claim_token: str) -> StartInfo:
        """The StartInfo of a restarted process from its parent's ``restart_state()`` (kind ``restart``)."""
        start = cls(kind="restart", claim_token=claim_token)
        for name in _RESTART_FIELDS:
            if name not in state:
                continue
            default, value = getattr(start, name), state[name]
            # typed like the field's default: the state arrives through an environment variable as JSON
            if name in ("parent", "decision_time") or value is None:
                setattr(start, name, value)
            else:
                setattr(start, name, type(default)(value))
        return start


SYNCH_POLL_S = (0.2, 2.0)  # pbt.compare=synch: a member ahead re-reads the workspace after 0.2 s, then 1.5x
# longer each time up to 2 s (a shared folder of 16 members is not read 5 times a second for an hour)

_RESTART_FIELDS = (
    "iteration", "restarts", "exploits", "parent", "decision_time", "event", "objective", "bookkeeping_s",
    "process_s",
)  # fmt: skip


def current_overrides() -> list[str]:
    """The Hydra command-line overrides of this process ([] outside a Hydra app). Any other failure propagates:
    it used to return [] on every error, and a restart then lost ``task`` and ``policy_idx``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    overrides = HydraConfig.get().overrides
    # hydra.run.dir places a relative train_dir (train.resolve_run_dir): a restart must keep it
    run_dir = [o for o in overrides.hydra if str(o).startswith("hydra.run.dir=")]
    return [*overrides.task, *run_dir]


def workspace_for(cfg: DictConfig, settings: PbtSettings) -> Workspace:
    return Workspace(
        settings.workspace_root(str(cfg.train_dir)),
        stale_after_s=float(settings.stale_after_s),
        stale_interval_factor=float(settings.stale_interval_factor),
    )


def apply_params(cfg: DictConfig, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)


def _rng(cfg: DictConfig, member: int, *salt: Any) -> random.Random:
    return random.Random("-".join(str(s) for s in (cfg.seed, member, *salt)))


def initial_pbt_check(
    cfg: DictConfig, params: PbtSettings | None = None, ws: Workspace | None = None
) -> StartInfo:
    """Claim the slot; resume, continue a restart, or (first start, member != 0) mutate initial params.
    Returns how this member starts (``params``/``ws``: built from ``cfg`` when not given)."""
    params = params or PbtSettings.from_cfg(cfg.pbt, cfg)
    member = int(params.policy_idx)
    ws = ws or workspace_for(cfg, params)
    ws.ensure_population(int(params.num_policies))
    token = ws.claim(member, int(params.num_policies))
    # the slot is ours now (claims are exclusive): temp files in it are leftovers of an earlier process of this
    # member killed mid-write (SIGKILL, OOM, preemption), never another writer's
    ws.remove_temp_files(member)
    keys = list(params.mutation)
    search.warn_dead_keys(params, cfg)

    restart_state = pop_restart_state()
    if restart_state is not None:
        return StartInfo.from_restart_state(restart_state, token)

    latest = _resume_point(ws, member) if not cfg.checkpoint else ws.latest(member)
    newest = ws.latest(member) if latest is None else None
    if newest is not None:  # metadata but no loadable checkpoint: from scratch, honestly recorded
        apply_params(cfg, {k: v for k, v in newest.params.items() if k in keys})
        start = StartInfo(
            claim_token=token,
            kind="scratch",
            iteration=newest.iteration,
            restarts=newest.restarts,
            exploits=newest.exploits,
        )
        ws.append_event(LineageEvent(
            event="resume", member=member, time=time.time(), iteration=newest.iteration, frames=0,
            old_params=newest.params, new_params=newest.params, mode="from_scratch", extra={"checkpoint": ""},
        ))  # fmt: skip
        return start
    if latest is not None:
        apply_params(cfg, {k: v for k, v in latest.params.items() if k in keys})
        ckpt = ws.checkpoint_path(latest)
        if not cfg.checkpoint:
            cfg.checkpoint = str(ckpt)
        start = StartInfo(
            claim_token=token,
            kind="resume",
            iteration=latest.iteration,
            restarts=latest.restarts,
            exploits=latest.exploits,
            parent=latest.parent,
            objective=latest.objective,
        )
        ws.append_event(LineageEvent(
            event="resume", member=member, time=time.time(), iteration=latest.iteration, frames=latest.frames,
            old_params=latest.params, new_params=latest.params, extra={"checkpoint": str(ckpt)},
        ))  # fmt: skip
        if not latest.finished and _budget_reached(cfg, latest):
            # killed between its last interval checkpoint (at the budget) and its final write (found by the chaos
            # suite): record the end now instead of letting rl_games train one epoch past the budget
            final = dataclasses.replace(
                latest,
                iteration=latest.iteration + 1,
                finished=True,
                time=time.time(),
                checkpoint=checkpoint_name(latest.iteration + 1),
            )
            ws.write_checkpoint(final, ws.load_state(latest), token)
            latest = final
        if latest.finished:
            # started again after its end (a launcher restarted, a kill after the final write): training on would
            # overshoot the member's frame budget by at least one epoch
            start.finished = latest
            ws.release_claim(member, token)
            log.info(
                "PBT member %d had already finished at iteration %d (%d frames); nothing to train",
                member,
                latest.iteration,
                latest.frames,
            )
            return start
        log.info("PBT member %d resumes from iteration %d (%s)", member, latest.iteration, cfg.checkpoint)
        return start

    earlier = [e for e in ws.read_lineage() if e.member == member and e.event == "mutate"]
    if earlier:  # crashed before its first checkpoint: re-apply the initial mutation, never draw a new one
        apply_params(cfg, {k: v for k, v in earlier[-1].new_params.items() if k in keys})
    elif keys and _mutates_initially(params.initial_mutation, member):
        old = params.initial_params(cfg)
        if params.initial == "sample":  # issue 14: a Latin hypercube row of the priors (pbt/priors.py)
            new, mode = search.initial_values(params, old, search.dead_set(params, cfg)), "initial_sample"
            changed = [k for k in keys if new[k] != old[k]]
        else:
            new, changed = mutate(
                old,
                params.mutation,
                _rng(cfg, member, "initial"),
                params.mutation_rate,
                params.change_min,
                params.change_max,
            )
            mode = "initial"
        apply_params(cfg, new)
        ws.append_event(LineageEvent(
            event="mutate", member=member, time=time.time(), iteration=0, frames=0, old_params=old,
            new_params=new, changed=changed, mode=mode,
        ))  # fmt: skip
    return StartInfo(claim_token=token)


def _mutates_initially(mode: str, member: int) -> bool:
    """pbt.initial_mutation: except_first (ours), all (IGE), none (Isaac Lab)."""
    return mode == "all" or (mode == "except_first" and member != 0)


def _budget_reached(cfg: DictConfig, meta: MemberMeta) -> bool:
    """Whether ``meta`` is at the end of the member's budget (rl_games max_epochs / max_frames)."""
    conf = cfg.train.params.config
    max_epochs, max_frames = conf.get("max_epochs", -1), conf.get("max_frames", -1)
    return (max_epochs not in (None, "", -1) and meta.epoch >= int(max_epochs)) or (
        max_frames not in (None, "", -1) and meta.frames >= int(max_frames)
    )


def _resume_point(ws: Workspace, member: int) -> MemberMeta | None:
    """The newest metadata of ``member`` whose checkpoint loads (None: none does, or no metadata at all).

    A resume used to log "resumes" and silently train from scratch when the newest checkpoint was gone. Now an
    unreadable or missing newest checkpoint falls back to the newest older one that loads (cleanup keeps
    ``keep_checkpoints`` of them), with a warning naming what was skipped. When none loads (found by the chaos
    suite: a member killed during its restart whose only checkpoint was then garbled), ``initial_pbt_check``
    starts the member from scratch and says so (warning + a ``resume`` lineage line with mode ``from_scratch``):
    a member that stays down would be lost for the whole run."""
    history = ws.member_history(member)
    skipped: list[str] = []
    for meta in reversed(history):
        try:
            ws.load_state(meta)
        except WorkspaceError as exc:
            skipped.append(f"iteration {meta.iteration}: {exc}")
            continue
        if skipped:
            log.warning(
                "PBT member %d: newest checkpoint(s) unusable, resuming from iteration %d instead (%s)",
                member,
                meta.iteration,
                "; ".join(skipped),
            )
        return meta
    if history:
        log.warning(
            "PBT member %d: no checkpoint of its metadata (up to iteration %d) loads (%s); it starts FROM SCRATCH "
            "(frames from 0, full budget; its PBT iteration counter goes on from %d)",
            member,
            history[-1].iteration,
            "; ".join(skipped[:3]),
            history[-1].iteration,
        )
    return None


class PbtAlgoObserver(AlgoObserver):
    """See the module docstring. ``start``: what ``initial_pbt_check`` decided (``StartInfo()``: a fresh start
    without a claim); ``cfg`` already carries its changes (resumed or initially mutated hyperparameters)."""

    def __init__(self, cfg: DictConfig, settings: PbtSettings, workspace: Workspace, start: StartInfo):
        super().__init__()
        self.cfg = cfg
        self.settings = settings
        self.member = int(settings.policy_idx)
        self.ws = workspace
        self.keys = list(settings.mutation)
        self.dead = search.dead_set(settings, cfg)  # keys the training loop overwrites: never re-applied live
        self.params = settings.initial_params(cfg)  # hyperparameter values (settings: how PBT runs)
        _, why = rule_choice(cfg.pbt)
        log.info("PBT member %d: replace_rule=%s (%s)", self.member, settings.replace_rule, why)
        self.changed_at_frame: int | None = None  # frames at the last (re)start, exploit or own mutation
        self.overrides = current_overrides()
        self.iteration, self.restarts, self.exploits = start.iteration, start.restarts, start.exploits
        self.parent = start.parent
        self.start = start  # what start-up decided (decision_time is cleared once the restart is logged)
        self.already_finished = (
            start.finished
        )  # run_training returns this member's final result, trains nothing
        self.window: deque[float] = deque(maxlen=int(self.settings.objective_window))
        self._pending: list[torch.Tensor] = []
        # pbt.judge_copy=source, after a hot-swap exploit, per env: its running episode began under the weights
        # this member had before (True until that episode ends). Such an episode is not the copied weights'
        # result, so it does not enter the window; until the copy has finished episodes of its own, its
        # objective is its source's (carried_source).
        self._begun_before_copy: torch.Tensor | None = None
        self.nonfinite_objectives = 0
        self.next_frame: int | None = None
        self.algo: Any = None
        self.writer: Any = None
        self.bookkeeping_s = float(start.bookkeeping_s)  # time in this observer's hooks, all processes
        self._process_s0 = float(start.process_s)
        self._t_init = time.perf_counter()
        self.last_objective = math.nan
        self.synch_wait_s = 0.0  # seconds this process waited for members behind it (pbt.compare=synch)
        # Wall clock of every PBT decision and metadata time stamp (a test injects a fake one: staleness is
        # judged on wall time, and intervals that take hours must not need hours of test time).
        self.clock = time.time
        self._t_init_wall = self.clock()
        self._last_write: float | None = None  # wall time of this process' previous metadata write
        self.interval_s = 0.0  # wall seconds of this member's last PBT interval (written as extra.interval_s)
        self.waiting = 0  # PBT iterations in a row where no decision was possible (too few valid members)
        self.waiting_counts: dict[str, int] = {}
        # Until this process has its own finished episodes, the objective is the one its weights came with
        # (the leader's after an exploit, the saved one after a restart/resume): episodes can be longer
        # than an interval, and an empty window must not read as "unknown" (NaN never ranks).
        self.carried_objective = float(start.objective)
        # pbt.judge_copy=source: the member whose weights this member copied last (exploit). Until this member
        # has finished episodes of its own, its objective is that member's newest one at this member's frame
        # count, not the one it had when copied (which a population that learns fast leaves behind within an
        # interval, so the copy would read as the worst and copy again).
        self.carried_source: int | None = (
            int(start.parent["member"])
            if settings.judge_copy == "source"
            and start.kind == "restart"
            and start.event == "exploit"
            and start.parent
            else None
        )

    # ---- rl_games hooks --------------------------------------------------------------------------
    def after_init(self, algo: Any) -> None:
        self._t_init = time.perf_counter()
        self._t_init_wall = self.clock()
        self.algo = algo
        self.writer = getattr(algo, "writer", None)
        # The window holds at least one finished episode per env: when a whole batch ends on the same step
        # (synchronised time-outs early in training), a shorter window would keep only the highest env rows.
        num_envs = int(getattr(algo, "num_actors", 0) or 0)
        if num_envs > (self.window.maxlen or 0):
            self.window = deque(self.window, maxlen=num_envs)

    def process_infos(self, infos: Any, done_indices: torch.Tensor) -> None:
        t0 = time.perf_counter()
        if self.start.decision_time is not None:
            self._log_restart_latency()
        if done_indices.numel():
            ids = done_indices.reshape(-1)
            values = self._objective_values(infos, ids).detach().float().reshape(-1)
            if self._begun_before_copy is not None:  # pbt.judge_copy=source: drop episodes begun before
                ids = ids.to(self._begun_before_copy.device)
                mixed = self._begun_before_copy[ids]
                self._begun_before_copy[ids] = False
                values = values[~mixed.to(values.device)]
                if not bool(self._begun_before_copy.any()):
                    self._begun_before_copy = None
            self._pending.append(values)
        self.bookkeeping_s += time.perf_counter() - t0

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        t0 = time.perf_counter()
        self._flush_pending()
        frames = int(self.algo.frame)
        interval = int(self.settings.interval_steps)
        if self.changed_at_frame is None:
            self.changed_at_frame = frames  # this process' start (fresh, restart or resume)
        if self.next_frame is None:
            # first epoch of this process (fresh, or restored at a later frame count): next mark strictly ahead
            self.next_frame = max(int(self.settings.start_after), (frames // interval + 1) * interval)
        if frames >= self.next_frame:
            self.next_frame = (frames // interval + 1) * interval
            self._pbt_iteration(frames, t0)
        self.bookkeeping_s += time.perf_counter() - t0

    # ---- objective ---------------------------------------------------------------------------------
    def _objective_values(self, infos: Any, ids: torch.Tensor) -> torch.Tensor:
        key = str(self.settings.objective or "")
        if key:
            value = lookup(infos, key, None)
            if value is None:
                avail = sorted(infos) if isinstance(infos, Mapping) else type(infos).__name__
                raise ConfigError(f"pbt.objective={key!r} is not in the env infos; available keys: {avail}")
        elif isinstance(infos, Mapping) and "true_objective" in infos:
            value = infos["true_objective"]
        else:
            return self.algo.current_rewards[ids, 0]
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=torch.float32)
        value = value.reshape(-1)
        if value.numel() == 1:
            return value.expand(ids.numel())
        return value.to(ids.device)[ids]

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        values = torch.cat([v.cpu() for v in self._pending]).tolist()
        self._pending.clear()
        finite = [v for v in values if math.isfinite(v)]
        self.nonfinite_objectives += len(values) - len(finite)
        self.window.extend(finite)

    def process_s(self) -> float:
        """Wall time this member has run (all its processes, from rl_games agent init on)."""
        return self._process_s0 + time.perf_counter() - self._t_init

    def objective_stats(self) -> search.WindowStats:
        """The window's mean, standard error and size (noise-aware selection; status shows them)."""
        self._flush_pending()
        return search.window_stats(list(self.window))

    def _carried(self) -> bool:
        """The objective is the source's (an exploit, no finished episode of this member's own since)."""
        self._flush_pending()
        return not self.window and self.carried_source is not None

    def objective(self) -> float:
        """Mean of the window (every episode finished so far included), else the carried objective."""
        self._flush_pending()
        if self.window:
            return float(sum(self.window) / len(self.window))
        if self.carried_source is not None and self.algo is not None:
            source = self.ws.record_at(self.carried_source, int(self.algo.frame))
            if source is not None and math.isfinite(source.objective):
                return float(source.objective)
        return self.carried_objective

    # ---- one PBT iteration ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return agent_state(self.algo)

    def metadata(self, frames: int, objective: float, finished: bool = False) -> MemberMeta:
        """The metadata this member writes at ``frames`` (its workspace record of this iteration)."""
        return MemberMeta(
            member=self.member,
            iteration=self.iteration,
            frames=frames,
            epoch=int(self.algo.epoch_num),
            objective=objective,
            params=dict(self.params),
            checkpoint=checkpoint_name(self.iteration),
            experiment=str(self.algo.experiment_name),
            experiment_dir=str(self.algo.experiment_dir),
            time=self.clock(),
            num_policies=int(self.settings.num_policies),
            parent=self.parent,
            restarts=self.restarts,
            exploits=self.exploits,
            overrides=list(self.overrides),
            finished=finished,
            extra={
                **search.meta_extra(self.objective_stats(), self.window.maxlen),
                # the objective is carried from this member (no finished episode of our own since the copy)
                **({"objective_source": self.carried_source} if self._carried() else {}),
                "nonfinite_objectives": self.nonfinite_objectives,
                "bookkeeping_s": round(self.bookkeeping_s, 6),
                "process_s": round(self.process_s(), 6),
                "interval_s": round(self.interval_s, 3),
                "synch_wait_s": round(self.synch_wait_s, 3),
                # iterations in a row without a possible decision, as of the previous iteration (poptrain status)
                "waiting": {
                    "iterations": self.waiting,
                    "warn_after": int(self.settings.waiting_warn_after),
                    **self.waiting_counts,
                },
            },
        )

    def _pbt_iteration(self, frames: int, t0: float) -> None:
        objective = self.objective()
        self.last_objective = objective
        grace = int(self.settings.objective_grace_steps)
        if not math.isfinite(objective) and grace and frames >= grace:
            what = self.settings.objective or "true_objective / episode return"
            raise ConfigError(
                f"PBT objective ({what}) produced no finite value in {frames} frames "
                f"(grace period pbt.objective_grace_steps={grace}); {self.nonfinite_objectives} non-finite values seen"
            )
        self.iteration += 1
        self.interval_s = self._interval_duration()
        try:
            self.ws.write_checkpoint(self.metadata(frames, objective), self._state(), self.start.claim_token)
        except WorkspaceError as exc:
            if not isinstance(exc.__cause__, OSError):
                raise  # e.g. the claim was taken over: this process must stop writing as this member
            # a full disk / quota / I/O error on the shared folder: nothing was written (atomic), training is
            # intact; skip this PBT iteration loudly and try again at the next interval
            self.iteration -= 1
            log.warning("PBT member %d: skipping the PBT iteration at frame %d: %s", self.member, frames, exc)
            return

        now = self.clock()
        self._last_write = now
        population = self.ws.read_population(now=now, include_stale=True)  # selection judges staleness
        deciding = not (
            frames < int(self.settings.initial_delay) or self._budget_spent(frames) or self._settling(frames)
        )
        judged, at = population, None  # what decisions compare; an exploit copies from ``population``
        if deciding and self.settings.compare == "synch":
            population, now = self._wait_for_peers(frames)
            judged, at = records_at(population, self.ws.record_at, frames), frames
        candidates = candidates_from_metas(judged.values(), now)
        ranked = rank_candidates(candidates, self.settings)
        rank = next((i for i, c in enumerate(ranked) if c.member == self.member), -1)
        self._scalar("pbt/objective", objective, frames)
        self._scalar("pbt/rank", rank, frames)
        self._scalar("pbt/restarts", self.restarts, frames)
        self._scalar("pbt/exploits", self.exploits, frames)

        if not deciding:
            self.ws.cleanup(self.member, keep_last=int(self.settings.keep_checkpoints))
            return
        decision = self.decide(candidates)
        self._track_waiting(decision.waiting, population_counts(candidates, self.settings), frames)
        decision = search.noise_gate(decision, self.member, judged, self.settings)
        decision = search.signal_gate(
            decision, judged, self.ws, self.settings, at
        )  # issue 14: pbt.wait_for_signal
        log.info(
            "PBT member %d iteration %d frames %d objective %.3f rank %d/%d%s: %s %s",
            self.member,
            self.iteration,
            frames,
            objective,
            rank,
            len(ranked),
            ""
            if at is None
            else f" (every member at frame {at}, after waiting {self.synch_wait_s:.1f} s in all)",
            decision.action,
            decision.reason,
        )
        if decision.action == "exploit" and decision.leader is not None and decision.leader in population:
            self.exploit(population[decision.leader], frames)
        elif decision.action == "mutate":
            self.mutate_own(frames)
        self.ws.cleanup(self.member, keep_last=int(self.settings.keep_checkpoints))

    def _wait_for_peers(self, frames: int) -> tuple[dict[int, MemberMeta], float]:
        """``pbt.compare: synch``: poll the workspace until no fresh, unfinished member is behind ``frames``; a
        member that stops writing turns stale (``stale_after_s``, ``stale_interval_factor``) and is no longer
        waited for, members that have never written are not waited for. Returns the population and the time
        it was read. Members only ever wait for members behind them, so no two wait for each other."""
        t0 = time.perf_counter()
        said = False
        pause = SYNCH_POLL_S[0]
        while True:
            now = self.clock()
            population = self.ws.read_population(now=now, include_stale=True)
            behind = sorted(
                m
                for m, meta in population.items()
                if m != self.member
                and meta.frames < frames
                and not meta.finished
                and not self.ws.is_stale(meta, now)
            )
            if not behind:
                self.synch_wait_s += time.perf_counter() - t0
                return population, now
            if not said:
                log.info(
                    "PBT member %d: waiting at frame %d for members %s (pbt.compare=synch)",
                    self.member,
                    frames,
                    behind,
                )
                said = True
            time.sleep(pause)
            pause = min(SYNCH_POLL_S[1], pause * 1.5)

    def decide(self, candidates: list[Candidate]) -> Decision:
        """Keep, mutate or exploit at this iteration under ``settings.replace_rule`` (seeded per iteration)."""
        return decide(
            self.member, candidates, self.settings, _rng(self.cfg, self.member, "decide", self.iteration)
        )

    def _interval_duration(self) -> float:
        """Wall seconds since this member's previous metadata write (across an os.execv restart: the
        workspace's newest metadata of this member), else since this process started training (a fresh start,
        or a resume after a crash / requeue, whose downtime is no part of the member's pace)."""
        now = self.clock()
        if self._last_write is not None:
            return max(0.0, now - self._last_write)
        previous = self.ws.latest(self.member) if self.start.kind == "restart" else None
        if previous is not None and previous.time <= now:
            return now - previous.time
        return max(0.0, now - self._t_init_wall)

    def _track_waiting(self, waiting: bool, counts: dict[str, int], frames: int) -> None:
        """Count iterations without a possible decision; say so once every ``waiting_warn_after`` of them."""
        self.waiting = self.waiting + 1 if waiting else 0
        self.waiting_counts = dict(counts) if waiting else {}
        self._scalar("pbt/waiting_iterations", self.waiting, frames)
        self._scalar("pbt/valid_members", counts["valid"], frames)
        every = int(self.settings.waiting_warn_after)
        if self.waiting and self.waiting % every == 0:
            log.warning(
                "PBT member %d: no PBT decision possible for %d iterations in a row: %d of %d members valid, "
                "%d missing (not started or not yet past start_after), %d stale (older than "
                "max(stale_after_s=%g, %g x own interval)), %d without an objective yet",
                self.member,
                self.waiting,
                counts["valid"],
                int(self.settings.num_policies),
                counts["missing"],
                counts["stale"],
                float(self.settings.stale_after_s),
                float(self.settings.stale_interval_factor),
                counts["no_objective"],
            )

    def _settling(self, frames: int) -> bool:
        """start_after_mode=since_change: fewer than start_after frames since the last change (IGE)."""
        if self.settings.start_after_mode != "since_change" or self.changed_at_frame is None:
            return False
        since = frames - self.changed_at_frame
        if since < int(self.settings.start_after):
            log.info(
                "PBT member %d: settling, %d frames since its last (re)start/exploit < start_after=%d; no decision",
                self.member,
                since,
                int(self.settings.start_after),
            )
            return True
        return False

    def _budget_spent(self, frames: int) -> bool:
        """True on the member's last epoch: a copy or restart there would only waste the remaining budget."""
        max_epochs, max_frames = int(self.algo.max_epochs), int(self.algo.max_frames)
        return (max_epochs != -1 and int(self.algo.epoch_num) >= max_epochs) or (
            max_frames != -1 and frames >= max_frames
        )

    def _mutated(self, base: Mapping[str, Any], salt: str) -> tuple[dict[str, Any], list[str]]:
        rng = _rng(self.cfg, self.member, salt, self.iteration)
        if self.settings.explore != "mutate":  # issue 14: perturb | resample | pb2 (pbt/search.py)
            return search.explore_member(
                base, self.settings, rng, self.ws, self.member, self.iteration, self.dead, self.algo
            )
        return mutate(
            dict(base),
            self.settings.mutation,
            rng,
            self.settings.mutation_rate,
            self.settings.change_min,
            self.settings.change_max,
        )

    def exploit(self, leader: MemberMeta, frames: int) -> None:
        """Copy ``leader``'s weights and explore from its params (hot swap when every change is live, else
        an os.execv restart)."""
        decision_time = time.time()
        try:
            state = self.ws.load_state(leader)
        except WorkspaceError as exc:  # the leader's file vanished or is corrupt: keep training, say so
            log.warning(
                "PBT member %d: cannot copy leader %d (%s); keeping own weights",
                self.member,
                leader.member,
                exc,
            )
            return
        old = dict(self.params)
        base = self._leader_params(leader)
        if (
            self.settings.exploit_params == "mixed"
        ):  # IGE: the leader's or its own params, probability 1/2 each
            if _rng(self.cfg, self.member, "exploit_base", self.iteration).random() >= 0.5:
                base = old
        new, changed = self._mutated(base, "exploit")
        differs = sorted(k for k in new if new[k] != old.get(k))
        state["epoch"], state["frame"] = int(self.algo.epoch_num), int(self.algo.frame)  # keep own counters
        self.exploits += 1
        self.changed_at_frame = frames
        self.parent = {"member": leader.member, "iteration": leader.iteration}
        hot = live.all_live(differs, self.algo)
        event = LineageEvent(
            event="exploit", member=self.member, time=decision_time, source=leader.member,
            source_iteration=leader.iteration, iteration=self.iteration, frames=frames, old_params=old,
            new_params=new, changed=differs,
            extra={"mutated": changed, "source_objective": leader.objective, "objective": self.last_objective},
        )  # fmt: skip
        if hot:
            self.algo.set_full_state_weights(state, set_epoch=False)
            self.window.clear()
            self._pending.clear()
            self.carried_objective = float(leader.objective)
            if self.settings.judge_copy == "source":
                self.carried_source = leader.member
                num_envs = int(getattr(self.algo, "num_actors", 0) or 0)
                self._begun_before_copy = torch.ones(num_envs, dtype=torch.bool) if num_envs > 0 else None
            # the leader's optimizer state carries the leader's lr: re-apply every live key we track
            # (except keys the training loop overwrites: issue 14, search.dead_set)
            api.set_params(
                self.algo, {k: v for k, v in new.items() if live.is_live(k, self.algo) and k not in self.dead}
            )
            self.params = new
            # what the running agent and env now use (task keys read back from the task itself)
            applied = api.get_params(self.algo, differs)
            now = time.time()
            self.ws.append_event(dataclasses.replace(
                event, time=now, mode="hot_swap", extra={**event.extra, "latency_s": now - decision_time,
                                                         "applied": applied}))  # fmt: skip
            return
        self.ws.append_event(dataclasses.replace(event, time=time.time(), mode="restart"))
        self._restart(new, state, decision_time, "exploit", float(leader.objective))

    def _leader_params(self, leader: MemberMeta) -> dict[str, Any]:
        """Own params with the leader's values of OUR mutation keys: the leader's metadata is workspace content
        (anyone can write it, checksum included), and its keys become argv on a restart. Other keys, keys
        ``untrusted.refusal`` refuses and non-numeric values are dropped with one warning; a key the leader lacks
        (a different mutation set) keeps our own value."""
        where = f"PBT member {self.member}: params of leader {leader.member}"
        theirs = safe_params(leader.params, self.keys, where)
        bad = sorted(k for k, v in theirs.items() if not is_number(v))
        if bad:
            log.warning("%s: ignoring non-numeric values of %s", where, [shown(k) for k in bad])
        return {**self.params, **{k: v for k, v in theirs.items() if k not in bad}}

    def mutate_own(self, frames: int) -> None:
        """Explore from its own params, keeping its own weights (hot swap or restart, as ``exploit``)."""
        decision_time = time.time()
        old = dict(self.params)
        new, changed = self._mutated(old, "mutate")
        if not changed:
            return
        self.changed_at_frame = frames
        event = LineageEvent(
            event="mutate",
            member=self.member,
            time=decision_time,
            iteration=self.iteration,
            frames=frames,
            old_params=old,
            new_params=new,
            changed=changed,
        )
        if live.all_live(changed, self.algo):
            api.set_params(self.algo, {k: new[k] for k in changed})
            self.params = new
            applied = api.get_params(self.algo, changed)
            self.ws.append_event(
                dataclasses.replace(event, time=time.time(), mode="hot_swap", extra={"applied": applied})
            )
            return
        self.ws.append_event(dataclasses.replace(event, time=time.time(), mode="restart"))
        self._restart(new, self._state(), decision_time, "mutate", self.objective())

    def _restart(
        self, new: dict[str, Any], state: dict[str, Any], decision_time: float, event: str, objective: float
    ) -> None:
        if not self.overrides:
            raise ConfigError(
                f"PBT member {self.member} cannot restart: its command-line overrides are unknown (not started "
                "through poptrain.train's Hydra app?); a restart without them would lose task and pbt.policy_idx"
            )
        path = Path(self.algo.nn_dir) / "pbt_restart.pth"  # the member's own folder, not the shared workspace
        atomic_torch_save(state, path)
        self.restarts += 1
        argv = restart_argv(self.overrides, {**new, "checkpoint": str(path)})
        carried = StartInfo(
            kind="restart", iteration=self.iteration, restarts=self.restarts, exploits=self.exploits,
            parent=self.parent, decision_time=decision_time, event=event, objective=objective,
            bookkeeping_s=self.bookkeeping_s, process_s=self.process_s(),
        )  # fmt: skip
        restart_process(argv, carried.restart_state(), self.writer)

    def _log_restart_latency(self) -> None:
        """First env step after an os.execv restart: record the restart and its latency."""
        start = self.start
        latency = time.time() - float(start.decision_time or time.time())
        start.decision_time = None
        self.ws.append_event(LineageEvent(
            event="restart", member=self.member, time=time.time(), source=self.parent["member"] if self.parent else None,
            source_iteration=self.parent["iteration"] if self.parent else None, iteration=self.iteration,
            frames=int(self.algo.frame), old_params=self.params, new_params=self.params, mode="restart",
            extra={"cause": start.event, "latency_s": latency},
        ))  # fmt: skip
        self._scalar("pbt/restart_latency_s", latency, int(self.algo.frame))

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None and value is not None and math.isfinite(float(value)):
            self.writer.add_scalar(tag, float(value), step)

    # ---- end of training -------------------------------------------------------------------------------
    def finish(self) -> None:
        """Write the final metadata (finished=True) and export the population's best member to best/."""
        if self.algo is None:
            return
        self._flush_pending()
        self.iteration += 1
        frames = int(self.algo.frame)
        self.ws.write_checkpoint(
            self.metadata(frames, self.objective(), finished=True), self._state(), self.start.claim_token
        )
        self.export_best()
        if self.start.claim_token:
            self.ws.release_claim(self.member, self.start.claim_token)

    def export_best(self) -> None:
        """Copy the best member's newest checkpoint + its full config into best/ (under a file lock).

        Never fatal: training has finished when this runs. A failure (no flock on this file system, best/
        replaced by a symbolic link, a full disk) is one warning naming the cause."""
        with _best_lock(self.ws.layout.best_lock) as locked:
            best = self.ws.best()  # pbt.ranking: the order status and the report show
            if best is None:
                return
            try:
                state = self.ws.load_state(best)
                cfg_copy = copy.deepcopy(self.cfg)
                apply_params(cfg_copy, {k: v for k, v in best.params.items() if k in self.keys})
                cfg_copy.pbt.policy_idx = best.member
                cfg_copy.experiment = best.experiment
                config = exportable_config(cfg_copy)
                config["checkpoint"] = ""
                # holding the lock, a .tmp in best/ is a leftover of an exporter killed mid-write (seen in the
                # chaos suite); without the lock it may be another member's write in progress
                self.ws.export_best(best, state, config, clean_temp=locked)
            except WorkspaceError as exc:
                log.warning("cannot export best member %d: %s", best.member, exc)
                return
            log.info(
                "PBT best member %d (objective %.3f) exported to %s",
                best.member,
                best.objective,
                self.ws.best_dir,
            )


_Observer = TypeVar("_Observer", bound=PbtAlgoObserver)


def member_observer(cfg: DictConfig, cls: type[_Observer] = PbtAlgoObserver) -> _Observer:  # type: ignore[assignment]
    """Start-up then the observer: settings from ``cfg``, ``initial_pbt_check`` (claim, resume or initial
    mutation, which may change ``cfg``), and the observer (``cls``: PbtAlgoObserver or a subclass) built from it."""
    settings = PbtSettings.from_cfg(cfg.pbt, cfg)
    ws = workspace_for(cfg, settings)
    start = initial_pbt_check(cfg, settings, ws)
    return cls(cfg, settings, ws, start)


#: errnos of flock() on a file system without locks (Lustre mounted without -o flock, some NFS setups)
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EBADF}


@contextlib.contextmanager
def _best_lock(path: Path) -> Iterator[bool]:
    """An exclusive flock on ``path`` (never following a link). Where the file system has no flock, export
    without it and say so: each best/ file is still written atomically, meta.yaml last, so a reader sees a
    complete export; two members finishing at the same moment may interleave, and the last one wins."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        log.warning("cannot open the best/ lock %s (%s); exporting without it", path, exc.strerror or exc)
        yield False
        return
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                raise
            locked = False
            log.warning(
                "flock is not available on the file system of %s (errno %d: %s); exporting best/ "
                "without the lock (files stay atomic, the last export wins)",
                path,
                exc.errno,
                exc.strerror,
            )
        yield locked
    finally:
        os.close(fd)


def exportable_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` resolved for best/config.yaml, minus what the environment holds: a value that reads an environment
    variable (``${oc.env:WANDB_API_KEY}``, also through other interpolations such as ``experiment``) is kept
    as written instead of its value; a plain string holding such a value (e.g. an experiment name resolved by
    the member) gets it replaced by ``<env>``. best/config.yaml and report.html are read by every co-user."""
    raw: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    secrets: set[str] = set()

    def collect(r: Any, v: Any) -> None:
        if isinstance(r, dict) and isinstance(v, dict):
            for k in r:
                collect(r[k], v.get(k))
        elif isinstance(r, list) and isinstance(v, list):
            for a, b in zip(r, v, strict=False):
                collect(a, b)
        elif isinstance(r, str) and "oc.env" in r and isinstance(v, str) and len(v) >= 4:
            secrets.add(v)  # shorter values (e.g. "1") would redact half the config and are no secret

    def scrub(r: Any, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: scrub(r.get(k) if isinstance(r, dict) else None, x) for k, x in v.items()}
        if isinstance(v, list):
            rs = r if isinstance(r, list) else [None] * len(v)
            return [scrub(a, b) for a, b in zip(rs, v, strict=False)]
        if isinstance(v, str) and any(s in v for s in secrets):
            if isinstance(r, str) and "${" in r:
                return r
            for s in secrets:
                v = v.replace(s, "<env>")
        return v

    collect(raw, resolved)
    return scrub(raw, resolved) if secrets else resolved
