"""The observer's hooks into the search modules (issue 14): explore, priors, noise-aware selection, PB2.

The decisions themselves are pure and live in ``explore``, ``priors``, ``noise`` and ``pb2``; this module
reads what they need from the PBT params, the config and the workspace, so the observer calls one function
per hook.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from typing import Any

from poptrain.pbt import pb2
from poptrain.pbt.explore import Dim, explore, search_dims
from poptrain.pbt.noise import WindowStats, gate, signal, window_stats
from poptrain.pbt.params import PbtSettings
from poptrain.pbt.priors import dead_keys, initial_sample
from poptrain.pbt.priors import warn_dead_keys as _warn_dead_keys
from poptrain.pbt.selection import Decision

__all__ = ["WindowStats", "window_stats"]

log = logging.getLogger(__name__)

_WARNED: set[str] = set()


def dims(params: PbtSettings, dead: frozenset[str] | set[str] = frozenset()) -> list[Dim]:
    """The searched keys' spaces, without ``dead`` keys (they keep their value: see ``dead_set``)."""
    found, problems = search_dims(params.mutation)
    if problems:  # PbtSettings.from_cfg reports these for explore != mutate / initial = sample
        raise ValueError("; ".join(problems))
    return [d for d in found if d.key not in dead]


def dead_set(params: PbtSettings, cfg: Any) -> frozenset[str]:
    """Mutated keys the training loop overwrites (``priors.dead_keys``). The new strategies (perturb, resample,
    pb2, the initial sample) leave them at their value, and a hot swap never re-applies them: re-applying
    learning_rate under the adaptive schedule would knock the rate the schedule adapted (up to 1e-2) back to
    the nominal 3e-4 at every exploit."""
    try:
        train_config = cfg.train.params.config
    except (AttributeError, KeyError):
        return frozenset()
    return frozenset(key for key, _ in dead_keys(list(params.mutation), train_config))


def warn_dead_keys(params: PbtSettings, cfg: Any) -> None:
    """Warn once per process for each mutated key that cannot act (poptrain.pbt.priors.dead_keys)."""
    try:
        train_config = cfg.train.params.config
    except (AttributeError, KeyError):
        return
    keys = [k for k in params.mutation if k not in _WARNED]
    for key, _why in _warn_dead_keys(keys, train_config):
        _WARNED.add(key)


def initial_values(
    params: PbtSettings, old: Mapping[str, Any], dead: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Member ``policy_idx``'s initial values: its row of the population's Latin hypercube (member 0: ``old``)."""
    member = int(params.policy_idx)
    new = dict(old)
    if member == 0:
        return new
    rows = initial_sample(
        dims(params, dead),
        int(params.num_policies),
        int(params.sample_seed),
        old,
        float(params.initial_width),
    )
    for key, value in rows[member - 1].items():
        new[key] = float(value) if isinstance(old.get(key), float) else value
    return new


def meta_extra(stats: WindowStats, window_size: int | None) -> dict[str, Any]:
    """The window's figures for the member's metadata (status and report show them; noise_gate reads them)."""
    return {
        "objective_se": round(stats.se, 9) if math.isfinite(stats.se) else None,
        "objective_n": stats.n,
        "objective_window": int(window_size or 0),
        "objective_binomial": stats.binomial,
    }


def _se(meta: Any) -> float:
    value = (getattr(meta, "extra", None) or {}).get("objective_se")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) and value >= 0 else math.nan  # workspace data is untrusted


def noise_gate(
    decision: Decision, member: int, population: Mapping[int, Any], params: PbtSettings
) -> Decision:
    """``noise.gate`` with the own and leader objectives and errors from the population's metadata."""
    if params.noise_z <= 0 or decision.action != "exploit" or decision.leader is None:
        return decision
    own, leader = population.get(member), population.get(decision.leader)
    if own is None or leader is None:
        return decision
    return gate(
        decision, float(own.objective), _se(own), float(leader.objective), _se(leader), float(params.noise_z)
    )


def signal_gate(
    decision: Decision, population: Mapping[int, Any], ws: Any, params: PbtSettings, at: int | None = None
) -> Decision:
    """``pbt.wait_for_signal``: turn exploit / mutate into keep until ``noise.signal`` says the population's
    objective carries signal (z = ``noise_z``, or 2 when that is 0); each member's low is the lowest objective
    of its metadata history in the workspace (its current one when it has none), up to frame ``at`` when the
    population is compared there (``pbt.compare: synch``: a later record is not known at that point)."""
    if not params.wait_for_signal or decision.action == "keep":
        return decision
    current, lows = [], []
    for member, meta in population.items():
        now = (float(meta.objective), _se(meta))
        finite = [
            (float(h.objective), _se(h))
            for h in ws.member_history(member)
            if math.isfinite(h.objective) and (at is None or h.frames <= at)
        ]
        current.append(now)
        lows.append(min([*finite, now]) if math.isfinite(now[0]) else now)
    z = float(params.noise_z) if params.noise_z > 0 else 2.0
    ok, why = signal(current, lows, z)
    if ok:
        return decision
    return Decision("keep", None, f"{decision.reason}; but {why}: keep")


def expected_decisions(params: PbtSettings, algo: Any) -> int:
    """How many PBT decisions the run will have: (its frame budget - ``initial_delay``) / ``interval_steps``
    (at least 1), from the agent's ``max_frames``, else ``max_epochs`` x frames per epoch (``batch_size``);
    ``FALLBACK_STEPS`` when the run has no budget (rl_games' -1 = train until stopped).

    ``pbt.explore_steps: 0`` perturbs by steps of 1/that of a key's range, so a key can cross its range within
    the run: 13 decisions for 150 AcrobotHard epochs of 8,192 frames with an interval of 10 epochs after 20,
    8 for 50 PendulumGeneric epochs with an interval of 5 after 10."""
    max_frames = int(getattr(algo, "max_frames", -1) or -1)
    max_epochs = int(getattr(algo, "max_epochs", -1) or -1)
    per_epoch = int(getattr(algo, "batch_size", 0) or 0)
    total = (
        max_frames if max_frames > 0 else max_epochs * per_epoch if max_epochs > 0 and per_epoch > 0 else 0
    )
    if total <= 0:
        return FALLBACK_STEPS
    return max(1, (total - int(params.initial_delay)) // max(1, int(params.interval_steps)))


FALLBACK_STEPS = 8  # pbt.explore_steps' default: a run without a frame or epoch budget


def explore_member(
    base: Mapping[str, Any],
    params: PbtSettings,
    rng: random.Random,
    ws: Any,
    member: int,
    iteration: int,
    dead: frozenset[str] = frozenset(),
    algo: Any = None,
) -> tuple[dict[str, Any], list[str]]:
    """New values for ``base`` by ``params.explore`` (perturb | resample | pb2); returns (new, changed).
    ``algo`` (the rl_games agent) sizes the steps when ``explore_steps`` is 0 (``expected_decisions``)."""
    found = dims(params, dead)
    steps = int(params.explore_steps) or expected_decisions(params, algo)

    def pb2_suggest() -> dict[str, float | int]:
        histories = {m: ws.member_history(m) for m in ws.members()}
        pending = [h[-1].params for m, h in histories.items() if m != member and h]
        return pb2.suggest(histories, found, pending, float(iteration + 1), rng, float(params.pb2_kappa))

    new, changed, ops = explore(
        base,
        found,
        rng,
        mode=params.explore,
        mutation_rate=float(params.mutation_rate),
        resample_probability=float(params.resample_probability),
        steps=steps,
        pb2_suggest=pb2_suggest if params.explore == "pb2" else None,
    )
    if ops:
        log.info("PBT member %d explore (%s): %s", member, params.explore, "; ".join(ops))
    return new, changed
