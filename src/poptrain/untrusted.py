"""Rules for values read from the shared PBT workspace, which any co-user (or a half-written file) controls.

Three places turn workspace content into something that acts:

- **argv**: a hyperparameter key from a leader's metadata or a lineage line becomes a Hydra override when a member
  restarts (``pbt.restart``) or ``poptrain replay`` retrains. One rule for all of them (``refusal``): the key must be
  a dotted identifier (``train.params.config.learning_rate``), must not start with ``hydra``, ``+``, ``~`` or ``-``
  (``+hydra.job.env_set.PYTHONPATH=...`` made the next process import a ``sitecustomize.py``; a key
  ``--experimental-rerun`` made Hydra unpickle a file), and must be one the caller allows: the member's own mutation
  set, or a key of the composed config in replay. Refused keys are dropped with ONE warning naming them and the rule;
  the member carries on with its own values.
- **terminal markup**: text shown through rich (launcher live table, ``poptrain status``) is escaped
  (``[/data/x.yaml]`` raised MarkupError in the launcher's main thread) and loses its control characters.
- **numbers**: a param value that is not a finite int/float is not copied into a mutation (it cannot be mutated and
  might not round-trip).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: a config key as an override may name it: identifiers joined by dots (no group paths, no ``@package``)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: an override's key on a member's own command line: dotted, or a config-group path (``pbt/mutation``)
_OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*([./][A-Za-z_][A-Za-z0-9_]*)*$")
_FORBIDDEN_PREFIXES = ("hydra", "+", "~", "-")
#: C0/C1 control characters except tab; newlines are shown as a visible ``\\n`` so one value stays one line
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

RULE = (
    "a key must be a dotted identifier (e.g. train.params.config.learning_rate), must not start with "
    "hydra, +, ~ or -, and must be one this member may set"
)


def refusal(key: Any, allowed: Collection[str] | None = None) -> str:
    """Why ``key`` may not become a Hydra override ('' when it may). ``allowed``: the keys the caller accepts."""
    if not isinstance(key, str):
        return f"not a string ({type(key).__name__})"
    if key.startswith(_FORBIDDEN_PREFIXES):
        return "starts with hydra, +, ~ or -"
    if not _DOTTED.match(key):
        return "not a dotted identifier"
    if allowed is not None and key not in allowed:
        return "not one this member may set"
    return ""


def override_refusal(override: str) -> str:
    """Why an override string read back from the workspace (a member's recorded command line) may not be reused
    ('' when it may). Recorded overrides legitimately carry ``+``/``++``/``~`` prefixes and group paths."""
    if not isinstance(override, str):
        return f"not a string ({type(override).__name__})"
    key = override.split("=", 1)[0]
    bare = key[2:] if key.startswith("++") else key[1:] if key.startswith(("+", "~")) else key
    if bare.startswith(("hydra", "-", "+", "~")) or not _OVERRIDE_KEY.match(bare):
        return "its key is not a config key (dotted identifier or group path) or names hydra"
    if "\n" in override or "\r" in override or "\x00" in override:
        return "holds a newline or NUL"
    return ""


def safe_params(values: Mapping[Any, Any], allowed: Collection[str] | None, where: str) -> dict[str, Any]:
    """``values`` without the keys ``refusal`` refuses; ONE warning naming every refused key and ``where``."""
    kept: dict[str, Any] = {}
    refused: list[str] = []
    for key, value in values.items():
        why = refusal(key, allowed)
        if why:
            refused.append(f"{shown(key)!r} ({why})")
        else:
            kept[key] = value
    if refused:
        log.warning("%s: ignoring %d untrusted key(s): %s; %s", where, len(refused), ", ".join(refused), RULE)
    return kept


def safe_overrides(overrides: Any, where: str) -> list[str]:
    """A recorded override list without the overrides ``override_refusal`` refuses (ONE warning)."""
    if not isinstance(overrides, list):
        log.warning(
            "%s: ignoring recorded overrides of type %s (expected a list)", where, type(overrides).__name__
        )
        return []
    kept, refused = [], []
    for o in overrides:
        why = override_refusal(o)
        if why:
            refused.append(f"{shown(o)!r} ({why})")
        else:
            kept.append(o)
    if refused:
        log.warning("%s: ignoring %d untrusted override(s): %s", where, len(refused), ", ".join(refused))
    return kept


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): a value a mutation operator can move and an override round-trips."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def shown(value: Any, limit: int = 200) -> str:
    """``value`` as one line of plain text: control characters dropped, newlines as ``\\n``, at most ``limit``."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markup_safe(value: Any, limit: int = 200) -> str:
    """``shown(value)`` escaped for rich markup (``[/x]`` prints as text instead of closing a tag)."""
    from rich.markup import escape

    return escape(shown(value, limit))
