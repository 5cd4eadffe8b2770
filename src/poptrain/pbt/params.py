"""PbtSettings: every PBT setting, validated once, every problem reported together in one ConfigError.

Anchors: IsaacGymEnvs ``pbt/pbt.py`` + ``cfg/pbt/*.yaml`` (IGE), Isaac Lab ``PbtCfg`` (ILab), Ray Tune's
``PopulationBasedTraining`` (Ray). Defaults are ours (sized for a small CPU population: Cartpole at 1,024 envs
trains 16,384 frames per epoch); each field's doc names the anchor and the anchor's default.

One source per setting: each field's default, bounds and doc are its ``setting(...)`` here (the replacement
rules' own settings: ``selection.RULES``); ``from_cfg`` checks them all with one loop (``fields.check_fields``),
and the Hydra defaults (``pbt/settings``, which ``pbt_default.yaml`` starts from) are generated from them.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poptrain.errors import ConfigError
from poptrain.overrides import MISSING as _MISSING
from poptrain.overrides import lookup
from poptrain.pbt.explore import EXPLORE_MODES, search_dims
from poptrain.pbt.fields import as_number, check_fields, plain_defaults, setting
from poptrain.pbt.mutation import MutationSpec, parse_spec
from poptrain.pbt.selection import COMPARE_MODES, RULES

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

#: seconds: the floor of the staleness limit; the engine, the workspace readers and ``poptrain status`` use this
#: one default (they disagreed: 600 s here, 3600 s in the workspace and the report)
STALE_AFTER_S = 600.0
#: the pace factor of the staleness limit (see PbtSettings.stale_interval_factor); metadata does not carry it
STALE_INTERVAL_FACTOR = 3.0


def _rule_defaults() -> dict[str, Any]:
    return {name: rule.settings() for name, rule in RULES.items()}


@dataclass(frozen=True)
class PbtSettings:
    """Validated PBT settings (build with ``PbtSettings.from_cfg``)."""

    enabled: bool = setting(
        False, "IGE/ILab: run this process as a PBT population member (IGE default False)"
    )
    num_policies: int = setting(8, "IGE/ILab: population size (both default 8)", lo=1)
    policy_idx: int = setting(
        0, "IGE/ILab: this member's index, unique in [0, num_policies)", below="num_policies"
    )
    workspace: str = setting(
        "pbt_workspace",
        "IGE/ILab: shared folder; absolute path, or relative to directory/train_dir",
        non_empty=True,
    )
    directory: str = setting("", "ILab: root for a relative workspace ('' = train_dir; ILab default '')")
    interval_steps: int = setting(
        163_840, "IGE/ILab: env frames between PBT iterations (IGE 10M, ILab 100k; ours 10 epochs)", lo=1
    )
    start_after: int = setting(
        163_840,
        "IGE: frames before this member may be replaced (IGE 10M); counted per start_after_mode",
        lo=0,
    )
    start_after_mode: str = setting(
        "absolute",
        "absolute (ours): no PBT iteration before the member's frame counter reaches start_after; since_change "
        "(IGE pbt.py, env_frames - initial_env_frames < start_after_steps): no replacement until start_after "
        "frames after its last (re)start, exploit or own mutation, so a freshly replaced member settles",
        choices=START_AFTER_MODES,
    )
    initial_delay: int = setting(327_680, "IGE: total frames before any replacement happens (IGE 20M)", lo=0)
    mutation_rate: float = setting(
        0.8,
        "IGE/ILab: per-parameter mutation probability (IGE 0.15, ILab 0.25); ours 0.8 so that a population of "
        "4-8 CPU members, which exploits a few times per run, explores more than one parameter per exploit",
        lo=0.0,
        hi=1.0,
    )
    change_min: float = setting(
        1.1, "IGE: smallest multiplicative change factor (IGE 1.1)", lo=0.0, lo_open=True
    )
    change_max: float = setting(
        1.5, "IGE: largest multiplicative change factor (IGE 1.5)", lo=0.0, lo_open=True
    )
    change_range: tuple[float, float] | None = setting(
        None, "ILab: [min, max] factor range; overrides change_min/max", custom=True
    )
    mutation: dict[str, MutationSpec] = setting(
        doc="IGE/ILab: dotted config key -> operator (Hydra group pbt/mutation)", factory=dict, custom=True
    )
    objective: str = setting(
        "", "ILab: dotted key into env infos; '' = true_objective if published else episode return"
    )
    replace_rule: str = setting(
        "fraction",
        "ours: one of selection.RULES: fraction (IGE) | threshold (ILab) | quantile (Ray); unset: rule_choice",
        choices=lambda: tuple(RULES),
    )
    #: each rule's own settings (selection.RULES), read from the flat pbt.* keys of its settings dataclass
    rule_settings: dict[str, Any] = setting(
        doc="per replace_rule: its settings", factory=_rule_defaults, custom=True
    )
    exploit_params: str = setting(
        "leader",
        "on exploit: leader (ours, ILab) mutates the leader's params; mixed (IGE pbt.py) starts from the "
        "leader's or the member's own params with probability 1/2 each, then mutates",
        choices=EXPLOIT_PARAMS,
    )
    initial_mutation: str = setting(
        "except_first",
        "first start: except_first (ours: members 1..N-1 mutate, member 0 keeps the config as a control); "
        "all (IGE initial_pbt_check: every member mutates); none (ILab: nobody mutates at start)",
        choices=INITIAL_MUTATION,
    )
    stale_after_s: float = setting(
        STALE_AFTER_S, "ours: floor of the staleness limit (see stale_interval_factor)", lo=0.0, lo_open=True
    )
    stale_interval_factor: float = setting(
        STALE_INTERVAL_FACTOR,
        "ours: a member counts as absent only when its newest metadata is older than max(stale_after_s, "
        "stale_interval_factor x its own last interval duration); 3 = two missed writes of slack, so a population "
        "whose intervals take an hour (IGE: 10-20 M frames per interval) is judged like one whose intervals take "
        "seconds; 0 = wall clock only (stale_after_s alone, the rule before this field existed)",
        lo=0.0,
    )
    waiting_warn_after: int = setting(
        3,
        "ours: after this many PBT iterations in a row without a possible decision (too few valid peers: "
        "missing, stale, no objective yet) the member logs one warning with the counts (and again every as many)",
        lo=1,
    )
    objective_window: int = setting(
        100,
        "ours: finished episodes averaged into the objective, at least num_envs (the observer grows it)",
        lo=1,
    )
    objective_grace_steps: int = setting(
        500_000, "ours: frames after which a never-finite objective is an error", lo=0
    )
    keep_checkpoints: int = setting(
        3, "ours: newest .pth files kept per member (plus any still referenced)", lo=1
    )
    dbg_mode: bool = setting(
        False,
        "IGE: single-policy debug mode; accepted so IGE's pbt yaml loads unchanged, only False is supported",
    )
    # -- search (issue 14: poptrain.pbt.explore / priors / noise / pb2) --------------------------------------
    explore: str = setting(
        "mutate",
        "ours: mutate (legacy operators) | perturb | resample | pb2 (see pbt/explore.py)",
        choices=EXPLORE_MODES,
    )
    resample_probability: float = setting(
        0.25, "Ray: perturb resamples a key from its prior with this probability", lo=0.0, hi=1.0
    )
    explore_steps: int = setting(
        8,
        "ours: perturb crosses a key's declared range in this many same-direction steps; 0 = the run's expected "
        "number of decisions (search.expected_decisions)",
        lo=0,
    )
    initial: str = setting(
        "mutate",
        "ours: mutate (legacy: one mutation per member) | sample (Latin hypercube)",
        choices=("mutate", "sample"),
    )
    sample_seed: int = setting(
        0, "ours: seed of the initial sample (the same for every member of a population)", lo=0
    )
    initial_width: float = setting(
        1.0,
        "ours: initial sample in this fraction of each prior around the config (1 = all)",
        lo=0.0,
        hi=1.0,
        lo_open=True,
    )
    noise_z: float = setting(
        0.0, "ours: exploit only if the lead exceeds noise_z standard errors (0 = off)", lo=0.0
    )
    wait_for_signal: bool = setting(
        False,
        "ours: no decision (exploit or explore) until the population's objective has signal (noise.signal)",
    )
    pb2_kappa: float = setting(2.0, "PB2: UCB width, mean + kappa * std", lo=0.0)
    judge_copy: str = setting(
        "carried",
        "after a hot-swap exploit: carried (IGE-like) restarts the window with every episode that ends from then "
        "on and reads the leader's objective at the copy until one has; source (ours) leaves out episodes that "
        "began under the old weights and, until the copy has finished episodes of its own, reads its source's "
        "newest objective at the copy's frame count (a population that learns fast leaves the objective at the "
        "copy behind within an interval, and the copy would read as the worst and copy again)",
        choices=("carried", "source"),
    )
    compare: str = setting(
        "latest",
        "latest (IGE/ILab): rank every member by its newest objective, however far it has trained; synch (ours, "
        "Ray Tune's synch): a member ahead waits for the fresh members behind it, then all are ranked at the same "
        "frame count (all members must run at once: a queued member is not waited for, a stalled one until stale)",
        choices=COMPARE_MODES,
    )

    # -- derived --------------------------------------------------------------------------------------------
    @property
    def rule(self) -> Any:
        """The settings of the chosen ``replace_rule`` (e.g. ``threshold_std`` for ``threshold``)."""
        return self.rule_settings[self.replace_rule]

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
            value = as_number(lookup(full_cfg, key))
            if value is None:
                raise ConfigError(f"pbt.mutation key {key!r} has no numeric value in the config")
            out[key] = value
        return out

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_cfg(cls, pbt_cfg: Mapping[str, Any], full_cfg: Mapping[str, Any] | None = None) -> PbtSettings:
        """Validate the ``pbt`` config section (and the mutation keys against ``full_cfg`` when given)."""
        if not isinstance(pbt_cfg, Mapping):
            raise ConfigError(f"pbt config must be a mapping, got {type(pbt_cfg).__name__}")
        raw = dict(pbt_cfg.items())
        problems: list[str] = []
        valid = config_keys()
        unknown = sorted(set(map(str, raw)) - set(valid))
        if unknown:
            problems.append(f"unknown pbt fields {unknown} (valid: {', '.join(valid)})")
        if "replace_rule" not in raw:
            raw["replace_rule"] = rule_choice(raw)[0]

        values: dict[str, Any] = {}
        check_fields(cls, raw, values, problems)
        rule_settings = {}
        for name, rule in RULES.items():
            own: dict[str, Any] = {}
            check_fields(rule.settings, raw, own, problems)
            rule_settings[name] = rule.settings(**own)
        values["rule_settings"] = rule_settings
        if values["dbg_mode"]:
            problems.append(
                "pbt.dbg_mode=True: IGE's single-policy debug mode is not supported; valid: False "
                "(a population of one is num_policies=1)"
            )
        values["change_range"] = _change_range(raw.get("change_range"), values, problems)
        values["mutation"] = _mutation_specs(raw.get("mutation"), full_cfg, problems)
        if values["explore"] != "mutate" or values["initial"] == "sample":
            problems += search_dims(values["mutation"])[1]

        if problems:
            raise ConfigError("invalid pbt config:\n  - " + "\n  - ".join(problems))
        return cls(**values)


def config_keys() -> list[str]:
    """Every flat ``pbt.*`` key: PbtSettings' fields (but rule_settings) and each rule's settings fields."""
    keys = [f.name for f in dataclasses.fields(PbtSettings) if f.name != "rule_settings"]
    for rule in RULES.values():
        keys += [f.name for f in dataclasses.fields(rule.settings) if f.name not in keys]
    return keys


def config_defaults() -> dict[str, Any]:
    """The ``pbt`` block of every default, as plain YAML values (the Hydra node ``pbt/settings``)."""
    out = plain_defaults(PbtSettings)
    del out["rule_settings"]
    for rule in RULES.values():
        out.update(plain_defaults(rule.settings))
    return out


def register_config_defaults() -> None:
    """Register ``pbt/settings`` (the defaults above) with Hydra's ConfigStore; pbt_default.yaml starts from it.
    Idempotent; ``poptrain.train`` calls it on import, before any config is composed."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="pbt", name="settings", node=config_defaults())


def _change_range(cr: Any, values: dict[str, Any], problems: list[str]) -> tuple[float, float] | None:
    """``change_range: [lo, hi]`` overrides change_min/change_max in ``values``; checks min <= max either way."""
    if cr is not None:
        pair = [as_number(x) for x in cr] if isinstance(cr, (list, tuple)) or _is_seq(cr) else None
        if pair is None or len(pair) != 2 or any(x is None or not x > 0 for x in pair):
            problems.append(f"pbt.change_range={_show(cr)}: expected [min, max] with 0 < min <= max")
        else:
            values["change_min"], values["change_max"] = float(pair[0]), float(pair[1])  # type: ignore[arg-type]
    if values["change_min"] > values["change_max"]:
        problems.append(
            f"change factor range [{values['change_min']:g}, {values['change_max']:g}]: min must be <= max"
        )
    return None if cr is None else (values["change_min"], values["change_max"])


def _mutation_specs(
    mspec: Any, full_cfg: Mapping[str, Any] | None, problems: list[str]
) -> dict[str, MutationSpec]:
    """``pbt.mutation`` parsed (agent.* keys as train.*), each key checked against ``full_cfg`` when given."""
    specs: dict[str, MutationSpec] = {}
    if mspec is None:
        mspec = {}
    if not isinstance(mspec, Mapping):
        problems.append(f"pbt.mutation={_show(mspec)}: expected a mapping of dotted config key -> operator")
        mspec = {}
    for raw_key, value in mspec.items():
        key = canonical_key(str(raw_key))
        if key in specs:
            problems.append(f"pbt.mutation key {str(raw_key)!r} repeats {key!r} (agent.* aliases train.*)")
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
            elif as_number(found) is None:
                problems.append(f"pbt.mutation key {str(key)!r}: value {_show(found)} is not a number")
    return specs


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


def _is_seq(v: Any) -> bool:
    return hasattr(v, "__len__") and hasattr(v, "__getitem__") and not isinstance(v, (str, Mapping))


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def describe() -> str:
    """One line per ``pbt.*`` key: default, what is valid, doc (``python -m poptrain.pbt.params``)."""
    from poptrain.pbt.fields import choices_of, default_of

    lines = []
    for cls in (PbtSettings, *(rule.settings for rule in RULES.values())):
        owner = "" if cls is PbtSettings else f" [{cls.__name__}]"
        for f in dataclasses.fields(cls):
            if f.name == "rule_settings":
                continue
            m, choices = f.metadata, choices_of(f)
            valid = " | ".join(map(str, choices)) if choices else ""
            if m.get("lo") is not None or m.get("hi") is not None:
                valid = (
                    f"{'(' if m['lo_open'] else '['}{m['lo']}, {m['hi'] if m['hi'] is not None else 'inf'}]"
                )
            lines.append(f"pbt.{f.name} = {default_of(f)!r}  {valid}{owner}\n    {m.get('doc', '')}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
