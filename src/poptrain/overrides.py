"""Hydra overrides: rendering (``hydra_value``, ``render``), keys (``override_key``, ``merge_overrides``), dotted
lookups, and overrides from saved configs, so a policy can be played or retrained with the exact config it was
trained with (mutated env and PPO params included).

``config_overrides(saved)`` composes the default config for the saved task and returns the smallest list
of ``key=value`` overrides that turns it into ``saved`` (compared after resolving interpolations): first
every differing leaf that is a plain value in the defaults, then — after composing again with those — any
leaf still different (e.g. one that is an interpolation in the defaults but was set explicitly).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from poptrain.errors import ConfigError
from poptrain.untrusted import safe_params, shown

log = logging.getLogger(__name__)

#: top-level config keys that describe the policy and its env (everything under task./train. too)
POLICY_TOP_KEYS = ("num_envs", "seed")
#: keys never carried over: where/how a run writes, not what the policy is
SKIP_KEYS = {
    "train.params.config.device",
    "train.params.config.device_name",
    "train.params.config.train_dir",
    "train.params.seed",
}


_PLAIN = re.compile(r"^[A-Za-z0-9_./:+-]+$")
_RESERVED_WORDS = {"true", "false", "null", "nan", "inf", "-inf", "none"}


def hydra_value(value: Any) -> str:
    """Render ``value`` for a Hydra command-line override so it parses back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text and _PLAIN.match(text) and text.lower() not in _RESERVED_WORDS and not _looks_numeric(text):
        return text
    return f"'{_escape_quoted(text)}'"


def _escape_quoted(text: str) -> str:
    """Hydra quoted-string escaping: ``'`` becomes ``\\'`` and only backslashes that precede a quote
    (an escaped one or the closing one) are doubled; other backslashes stay literal."""
    out: list[str] = []
    run = 0  # backslashes seen just before the current position
    for ch in text:
        if ch == "\\":
            run += 1
            continue
        if ch == "'":
            out.append("\\" * (2 * run) + "\\'")
        else:
            out.append("\\" * run + ch)
        run = 0
    out.append("\\" * (2 * run))  # a trailing run precedes the closing quote
    return "".join(out)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def override_key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` -> ``a.b``; ``~a`` -> ``a``)."""
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


MISSING: Any = object()  #: what ``lookup`` returns for an absent key (when no ``default`` is given)


def lookup(data: Any, dotted: str, default: Any = MISSING) -> Any:
    """The value at ``a.b.c`` in nested mappings (OmegaConf DictConfig and env ``infos`` dicts included);
    ``default`` when a part is absent or its parent is not a mapping. The one dotted-key lookup."""
    node = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def render(key: str, value: Any, prefix: str = "") -> str:
    """One Hydra override ``<prefix><key>=<value>`` (prefix ``+``/``++`` or empty), the value in Hydra's grammar.
    The one override renderer: restarts, replays, play's saved-config overrides and the CLI all call it."""
    return f"{prefix}{key}={hydra_value(value)}"


def _prefix(override: str) -> str:
    """The ``+``/``++``/``~`` an override starts with ('' for none)."""
    head = override.split("=", 1)[0]
    return head[: len(head) - len(head.lstrip("+~"))]


def merge_overrides(base: Sequence[str], updates: Sequence[str]) -> list[str]:
    """``base`` without the overrides whose key an update sets, then ``updates``: the one override merge (PBT
    restarts, replay segments, play and the CLI's extra overrides).

    An update without a prefix inherits the one of the base override it replaces: ``+task.env.extra=1`` adds a key
    the defaults lack, and ``task.env.extra=2`` would fail to compose (a restarted member died at its first
    restart; a replay could not run such a member). A key the base deleted with ``~`` and an update sets gets
    ``++`` (add or override). An update with its own prefix keeps it."""
    inherited: dict[str, str] = {}
    for o in base:
        prefix = _prefix(o)
        inherited[override_key(o)] = "++" if prefix.startswith(("++", "~")) else prefix
    keys = {override_key(u) for u in updates}
    kept = [o for o in base if override_key(o) not in keys]
    return kept + [u if _prefix(u) else inherited.get(override_key(u), "") + u for u in updates]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": leaf} (lists are leaves)."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _wanted(key: str) -> bool:
    return (key.startswith(("task.", "train.")) or key in POLICY_TOP_KEYS) and key not in SKIP_KEYS


def compose(overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compose poptrain's config with ``overrides``: (resolved, unresolved) containers."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from poptrain.config import CFG_DIR, register_resolvers

    register_resolvers()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CFG_DIR)):
            cfg = hydra_compose("config", overrides=list(overrides))
        resolved = OmegaConf.to_container(cfg, resolve=True)
        raw = OmegaConf.to_container(cfg, resolve=False)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"cannot compose the config with overrides {list(overrides)}: {str(exc).splitlines()[0]}"
        ) from None
    assert isinstance(resolved, dict) and isinstance(raw, dict)
    return cast(dict[str, Any], resolved), cast(dict[str, Any], raw)


def _without_env_reads(data: Any, prefix: str = "") -> tuple[Any, list[str]]:
    """``data`` without the leaves that read the environment (``${oc.env:...}``): a saved config is workspace
    content, and resolving them would put this user's environment (API keys) into the play argv."""
    if isinstance(data, Mapping):
        out, dropped = {}, []
        for k, v in data.items():
            kept, sub = _without_env_reads(v, f"{prefix}.{k}" if prefix else str(k))
            dropped += sub
            if kept is not _DROP:
                out[k] = kept
        return out, dropped
    if isinstance(data, str) and "${" in data and "oc.env" in data:
        return _DROP, [prefix]
    return data, []


_DROP = object()


def _resolved(saved: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` with any ``${...}`` interpolation resolved (a config saved unresolved), except reads of the
    environment, which are dropped with one warning (the defaults' value is used for them)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from poptrain.config import register_resolvers

    register_resolvers()
    saved, dropped = _without_env_reads(saved)
    if dropped:
        log.warning(
            "saved config: not resolving %d value(s) that read the environment: %s",
            len(dropped),
            ", ".join(shown(k) for k in dropped),
        )
    try:
        out = OmegaConf.to_container(OmegaConf.create(dict(saved)), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"the saved config does not resolve: {str(exc).splitlines()[0]}") from None
    assert isinstance(out, dict)
    return cast(dict[str, Any], out)


def config_overrides(saved: Mapping[str, Any]) -> list[str]:
    """Overrides that rebuild ``saved`` (a full composed config) from poptrain's defaults."""
    task = saved.get("task", {}).get("name") if isinstance(saved.get("task"), Mapping) else None
    if not task:
        raise ConfigError("the saved config has no task.name; cannot tell which task it was trained on")
    base = [render("task", task)]
    saved = _resolved(saved)
    flat = {k: v for k, v in flatten(saved).items() if _wanted(k)}
    # keys of a saved config become argv: the same rule as every other workspace key (one warning)
    target = safe_params(flat, None, "saved config")
    resolved, raw = compose(base)
    defaults, raw_flat = flatten(resolved), flatten(raw)
    overrides = list(base)
    for key, value in target.items():
        if key in defaults and defaults[key] == value:
            continue
        if key in raw_flat and isinstance(raw_flat[key], str) and "${" in raw_flat[key]:
            continue  # derived from another key: fixed by the second pass if still different
        overrides.append(render(key, value, "" if key in defaults else "++"))
    second = flatten(compose(overrides)[0])
    for key, value in target.items():
        if second.get(key, object()) != value:
            overrides.append(render(key, value, "" if key in defaults else "++"))
    return overrides
