"""PbtParams: every PBT setting, validated once, every problem reported together in one ConfigError.

Anchors: IsaacGymEnvs ``pbt/pbt.py`` + ``cfg/pbt/*.yaml`` (IGE), Isaac Lab ``PbtCfg`` (ILab), Ray Tune's
``PopulationBasedTraining`` (Ray). Defaults are ours (sized for a small CPU population: Cartpole at 1,024 envs
trains 16,384 frames per epoch); each field's comment names the anchor and the anchor's default.

``change_range`` vs ``change_min``/``change_max``: ``change_range: [lo, hi]`` (Isaac Lab's spelling) overrides
``change_min``/``change_max`` when set (not null); the validated object always carries the effective pair in
``change_min``/``change_max`` and ``change_range`` echoes it.

How the replacement rule is chosen (``rule_choice``): ``replace_rule`` when the block sets it; otherwise an
Isaac Lab-style block (it sets ``threshold_std`` or ``threshold_abs`` and none of IGE's ``replace_fraction_*`` /
``replace_threshold_frac_*``, or it spells mutation keys ``agent.params.config.*``) gets Isaac Lab's
``threshold`` rule, anything else ``fraction``. The member logs the rule and the reason at start, so a pasted
block never has its thresholds silently ignored. Presets: ``pbt=isaaclab`` and ``pbt=isaacgymenvs``.

Isaac Lab spells the rl_games agent config ``agent.params.config.*`` (it flattens ``{"agent": params}``); here
it is ``train.params.config.*``: mutation keys starting with ``agent.`` are accepted as aliases of ``train.``.

Workspace folder: an absolute ``workspace`` is used as is (members on several machines share it); otherwise it
lies under ``directory`` when that is set (Isaac Lab), else under the run's ``train_dir``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poptrain.errors import ConfigError
from poptrain.pbt.mutation import MutationSpec, parse_spec

REPLACE_RULES = ("fraction", "threshold", "quantile")
EXPLOIT_PARAMS = ("leader", "mixed")
INITIAL_MUTATION = ("except_first", "all", "none")
START_AFTER_MODES = ("absolute", "since_change")
_IGE_RULE_KEYS = (
    "replace_fraction_worst",
    "replace_fraction_best",
    "replace_threshold_frac_std",
    "replace_threshold_frac_absolute",
)
_IL_AGENT_PREFIX, _OUR_AGENT_PREFIX = "agent.", "train."
_MISSING = object()


@dataclass(frozen=True)
class PbtParams:
    """Validated PBT settings (build with ``PbtParams.from_cfg``)."""

    enabled: bool = False  # IGE/ILab: run this process as a PBT population member (IGE default False)
    policy_idx: int = 0  # IGE/ILab: this member's index, unique in [0, num_policies)
    num_policies: int = 8  # IGE/ILab: population size (both default 8)
    workspace: str = (
        "pbt_workspace"  # IGE/ILab: shared folder; absolute path, or relative to directory/train_dir
    )
    directory: str = ""  # ILab: root for a relative workspace ('' = train_dir; ILab default '')
    interval_steps: int = (
        163_840  # IGE/ILab: env frames between PBT iterations (IGE 10M, ILab 100k; ours 10 epochs)
    )
    # IGE: frames before this member may be replaced (IGE 10M); counted per start_after_mode
    start_after: int = 163_840
    # absolute (ours): no PBT iteration before the member's frame counter reaches start_after;
    # since_change (IGE pbt.py, env_frames - initial_env_frames < start_after_steps): no replacement until
    # start_after frames after its last (re)start, exploit or own mutation, so a freshly replaced member settles
    start_after_mode: str = "absolute"
    initial_delay: int = 327_680  # IGE: total frames before any replacement happens (IGE 20M)
    replace_fraction_worst: float = 0.125  # IGE: worst ceil(frac*N) members are underperformers (IGE 0.125)
    replace_fraction_best: float = 0.3  # IGE: a leader is drawn from the best ceil(frac*N) (IGE 0.3)
    replace_threshold_frac_std: float = 0.5  # IGE: exploit only if lead > frac * population std (IGE 0.5)
    replace_threshold_frac_absolute: float = 0.05  # IGE: ... and lead > frac * |leader objective| (IGE 0.05)
    # IGE/ILab: per-parameter mutation probability (IGE 0.15, ILab 0.25); ours 0.8 so that a population of
    # 4-8 CPU members, which exploits a few times per run, explores more than one parameter per exploit
    mutation_rate: float = 0.8
    change_min: float = 1.1  # IGE: smallest multiplicative change factor (IGE 1.1)
    change_max: float = 1.5  # IGE: largest multiplicative change factor (IGE 1.5)
    change_range: tuple[float, float] | None = None  # ILab: [min, max] factor range; overrides change_min/max
    mutation: dict[str, MutationSpec] = field(default_factory=dict)  # IGE/ILab: dotted config key -> operator
    objective: str = (
        ""  # ILab: dotted key into env infos; '' = true_objective if published else episode return
    )
    threshold_std: float = 0.10  # ILab: k in mean +- k*std cuts of the threshold rule (ILab 0.10)
    threshold_abs: float = 0.05  # ILab: A in mean +- A cuts of the threshold rule (ILab 0.05)
    replace_rule: str = "fraction"  # ours: fraction (IGE) | threshold (ILab) | quantile (Ray); rule_choice
    # on exploit: leader (ours, ILab) mutates the leader's params; mixed (IGE pbt.py) starts from the leader's or
    # the member's own params with probability 1/2 each, then mutates
    exploit_params: str = "leader"
    # first start: except_first (ours: members 1..N-1 mutate, member 0 keeps the config as a control);
    # all (IGE initial_pbt_check: every member mutates); none (ILab: nobody mutates at start)
    initial_mutation: str = "except_first"
    quantile_fraction: float = 0.25  # Ray: bottom/top quantile size for replace_rule=quantile (Ray 0.25)
    stale_after_s: float = 600.0  # ours: floor of the staleness limit (see stale_interval_factor)
    # ours: a member counts as absent only when its newest metadata is older than
    # max(stale_after_s, stale_interval_factor x its own last interval duration); 3 = two missed writes of slack,
    # so a population whose intervals take an hour (IGE: 10-20 M frames per interval) is judged like one whose
    # intervals take seconds; 0 = wall clock only (stale_after_s alone, the rule before this field existed)
    stale_interval_factor: float = 3.0
    # ours: after this many PBT iterations in a row without a possible decision (too few valid peers: missing,
    # stale, no objective yet) the member logs one warning with the counts (and again every as many iterations)
    waiting_warn_after: int = 3
    objective_window: int = (
        100  # ours: finished episodes averaged into the objective, at least num_envs (the observer grows it)
    )
    objective_grace_steps: int = 500_000  # ours: frames after which a never-finite objective is an error
    keep_checkpoints: int = 3  # ours: newest .pth files kept per member (plus any still referenced)
    # IGE: single-policy debug mode; accepted so IGE's pbt yaml loads unchanged, only False is supported
    dbg_mode: bool = False
    # -- search (issue 14: poptrain.pbt.explore / priors / noise / pb2) --------------------------------------
    explore: str = "mutate"  # ours: mutate (legacy operators) | perturb | resample | pb2 (see pbt/explore.py)
    resample_probability: float = 0.25  # Ray: perturb resamples a key from its prior with this probability
    # ours: perturb crosses a key's declared range in this many same-direction steps; 0 = the run's expected
    # number of decisions (search.expected_decisions)
    explore_steps: int = 8
    initial: str = "mutate"  # ours: mutate (legacy: one mutation per member) | sample (Latin hypercube)
    sample_seed: int = 0  # ours: seed of the initial sample (the same for every member of a population)
    initial_width: float = 1.0  # ours: initial sample in this fraction of each prior around the config (1 = all)
    noise_z: float = 0.0  # ours: exploit only if the lead exceeds noise_z standard errors (0 = off)
    # ours: no decision (exploit or explore) until the population's objective has signal (noise.signal)
    wait_for_signal: bool = False
    pb2_kappa: float = 2.0  # PB2: UCB width, mean + kappa * std

    # -- derived --------------------------------------------------------------------------------------------
    def workspace_root(self, train_dir: str | Path) -> Path:
        """The workspace folder: absolute ``workspace`` wins, else ``directory`` (or ``train_dir``)/workspace."""
        ws = Path(self.workspace).expanduser()
        if ws.is_absolute():
            return ws
        return Path(self.directory or train_dir).expanduser() / ws

    def initial_params(self, full_cfg: Mapping[str, Any]) -> dict[str, int | float]:
        """Current value of every mutated key, read from the composed config (numeric strings converted)."""
        out: dict[str, int | float] = {}
        for key in self.mutation:
            value = _as_number(lookup(full_cfg, key))
            if value is None:
                raise ConfigError(f"pbt.mutation key {key!r} has no numeric value in the config")
            out[key] = value
        return out

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_cfg(cls, pbt_cfg: Mapping[str, Any], full_cfg: Mapping[str, Any] | None = None) -> PbtParams:
        """Validate the ``pbt`` config section (and the mutation keys against ``full_cfg`` when given)."""
        problems: list[str] = []
        fields = {f.name: f for f in dataclasses.fields(cls)}
        raw = dict(pbt_cfg.items()) if isinstance(pbt_cfg, Mapping) else {}
        if not isinstance(pbt_cfg, Mapping):
            raise ConfigError(f"pbt config must be a mapping, got {type(pbt_cfg).__name__}")
        unknown = sorted(set(map(str, raw)) - set(fields))
        if unknown:
            problems.append(f"unknown pbt fields {unknown} (valid: {', '.join(fields)})")

        def get(name: str) -> Any:
            if name in raw:
                return raw[name]
            f = fields[name]
            return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

        values: dict[str, Any] = {}

        def boolean(name: str) -> None:
            v = get(name)
            if not isinstance(v, bool):
                problems.append(f"pbt.{name}={v!r}: expected true or false")
            values[name] = bool(v) if isinstance(v, bool) else False

        def integer(name: str, lo: int | None = None, hi: int | None = None, what: str = "") -> None:
            v = get(name)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                problems.append(f"pbt.{name}={v!r}: expected an integer{what}")
                values[name] = fields[name].default
                return
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
                problems.append(f"pbt.{name}={v}: out of range, valid: {what or rng}")
            values[name] = v

        def number(
            name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False
        ) -> None:
            v = _as_number(get(name))
            if v is None or not math.isfinite(v):
                problems.append(f"pbt.{name}={get(name)!r}: expected a finite number")
                values[name] = fields[name].default
                return
            low_bad = lo is not None and (v <= lo if lo_open else v < lo)
            if low_bad or (hi is not None and v > hi):
                left = "(" if lo_open else "["
                problems.append(
                    f"pbt.{name}={v:g}: out of range, valid: {left}{lo}, {hi if hi is not None else 'inf'}]"
                )
            values[name] = float(v)

        def string(name: str, non_empty: bool = False) -> None:
            v = get(name)
            if not isinstance(v, str) or (non_empty and not v.strip()):
                problems.append(f"pbt.{name}={v!r}: expected a {'non-empty ' if non_empty else ''}string")
                v = fields[name].default
            values[name] = v

        # -- scalar fields ----------------------------------------------------------------------------------
        boolean("enabled")
        boolean("dbg_mode")
        if values["dbg_mode"]:
            problems.append(
                "pbt.dbg_mode=True: IGE's single-policy debug mode is not supported; valid: False "
                "(a population of one is num_policies=1)"
            )
        integer("num_policies", lo=1)
        n = values["num_policies"]
        integer("policy_idx", lo=0, hi=max(n - 1, 0), what=f" in 0..{n - 1} (num_policies={n})")
        string("workspace", non_empty=True)
        string("directory")
        integer("interval_steps", lo=1)
        integer("start_after", lo=0)
        integer("initial_delay", lo=0)
        for name in ("replace_fraction_worst", "replace_fraction_best", "mutation_rate"):
            number(name, 0.0, 1.0)
        for name in (
            "replace_threshold_frac_std",
            "replace_threshold_frac_absolute",
            "threshold_std",
            "threshold_abs",
        ):
            number(name, 0.0)
        number("change_min", 0.0, lo_open=True)
        number("change_max", 0.0, lo_open=True)
        string("objective")
        if "replace_rule" not in raw:
            raw["replace_rule"] = rule_choice(raw)[0]
        for name, choices in (
            ("replace_rule", REPLACE_RULES),
            ("exploit_params", EXPLOIT_PARAMS),
            ("initial_mutation", INITIAL_MUTATION),
            ("start_after_mode", START_AFTER_MODES),
        ):
            v = get(name)
            if v not in choices:
                problems.append(f"pbt.{name}={v!r}: expected one of {', '.join(choices)}")
                v = fields[name].default
            values[name] = v
        number("quantile_fraction", 0.0, 0.5, lo_open=True)
        number("stale_after_s", 0.0, lo_open=True)
        number("stale_interval_factor", 0.0)
        integer("waiting_warn_after", lo=1)
        integer("objective_window", lo=1)
        integer("objective_grace_steps", lo=0)
        integer("keep_checkpoints", lo=1)

        # -- change_range overrides change_min/change_max -------------------------------------------------
        cr = get("change_range")
        values["change_range"] = None
        if cr is not None:
            pair = [_as_number(x) for x in cr] if isinstance(cr, (list, tuple)) or _is_seq(cr) else None
            if pair is None or len(pair) != 2 or any(x is None or not x > 0 for x in pair):
                problems.append(f"pbt.change_range={_show(cr)}: expected [min, max] with 0 < min <= max")
            else:
                values["change_min"], values["change_max"] = float(pair[0]), float(pair[1])  # type: ignore[arg-type]
        if values["change_min"] > values["change_max"]:
            problems.append(
                f"change factor range [{values['change_min']:g}, {values['change_max']:g}]: min must be <= max"
            )
        if cr is not None:
            values["change_range"] = (values["change_min"], values["change_max"])

        # -- mutation specs -----------------------------------------------------------------------------------
        mspec = get("mutation")
        specs: dict[str, MutationSpec] = {}
        if mspec is None:
            mspec = {}
        if not isinstance(mspec, Mapping):
            problems.append(
                f"pbt.mutation={_show(mspec)}: expected a mapping of dotted config key -> operator"
            )
            mspec = {}
        for raw_key, value in mspec.items():
            key = canonical_key(str(raw_key))
            if key in specs:
                problems.append(
                    f"pbt.mutation key {str(raw_key)!r} repeats {key!r} (agent.* aliases train.*)"
                )
            spec, errs = parse_spec(key, value)
            problems += [f"pbt.{e}" for e in errs]
            if spec is None:
                continue
            specs[key] = spec
            if full_cfg is not None:
                found = lookup(full_cfg, str(key))
                if found is _MISSING:
                    problems.append(
                        f"pbt.mutation key {str(key)!r} matches nothing in the config (use the full dotted path, "
                        "e.g. train.params.config.learning_rate)"
                    )
                elif _as_number(found) is None:
                    problems.append(f"pbt.mutation key {str(key)!r}: value {_show(found)} is not a number")
        values["mutation"] = specs

        # -- search (issue 14) ----------------------------------------------------------------------------
        from poptrain.pbt.explore import EXPLORE_MODES, search_dims

        for name, options in (("explore", EXPLORE_MODES), ("initial", ("mutate", "sample"))):
            v = get(name)
            if v not in options:
                problems.append(f"pbt.{name}={v!r}: expected one of {', '.join(options)}")
                v = options[0]
            values[name] = v
        number("resample_probability", 0.0, 1.0)
        integer("explore_steps", lo=0)
        integer("sample_seed", lo=0)
        number("noise_z", 0.0)
        number("initial_width", 0.0, 1.0, lo_open=True)
        boolean("wait_for_signal")
        number("pb2_kappa", 0.0)
        if values["explore"] != "mutate" or values["initial"] == "sample":
            problems += search_dims(specs)[1]

        if problems:
            raise ConfigError("invalid pbt config:\n  - " + "\n  - ".join(problems))
        return cls(**values)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------
def canonical_key(key: str) -> str:
    """Isaac Lab's ``agent.params.config.x`` -> ``train.params.config.x``; any other key unchanged."""
    if key.startswith(_IL_AGENT_PREFIX):
        return _OUR_AGENT_PREFIX + key[len(_IL_AGENT_PREFIX) :]
    return key


def rule_choice(pbt_cfg: Mapping[str, Any]) -> tuple[str, str]:
    """(replace_rule, why): the block's own ``replace_rule``, else Isaac Lab's for an IL-style block, else IGE's."""
    raw = dict(pbt_cfg.items()) if isinstance(pbt_cfg, Mapping) else {}
    if "replace_rule" in raw:
        return str(raw["replace_rule"]), "pbt.replace_rule is set"
    mutation = raw.get("mutation")
    agent_keys = isinstance(mutation, Mapping) and any(str(k).startswith(_IL_AGENT_PREFIX) for k in mutation)
    thresholds = [k for k in ("threshold_std", "threshold_abs") if k in raw]
    ige_keys = [k for k in _IGE_RULE_KEYS if k in raw]
    if thresholds and not ige_keys:
        return "threshold", f"Isaac Lab-style block: it sets {', '.join(thresholds)} and no IGE replace_* key"
    if agent_keys and not ige_keys:
        return "threshold", "Isaac Lab-style block: mutation keys are spelled agent.params.config.*"
    return "fraction", "default (IsaacGymEnvs' rule); set pbt.replace_rule to choose"


def lookup(cfg: Any, dotted: str) -> Any:
    """Value at ``a.b.c`` in nested mappings (OmegaConf DictConfig included); ``_MISSING`` when absent."""
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _as_number(v: Any) -> int | float | None:
    """int/float as is, numeric strings ('3e-4', which YAML 1.1 leaves a string) converted; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _is_seq(v: Any) -> bool:
    return hasattr(v, "__len__") and hasattr(v, "__getitem__") and not isinstance(v, (str, Mapping))


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
