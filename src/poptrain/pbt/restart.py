"""Restart a population member with new hyperparameters: argv rebuilt from overrides, then os.execv.

The argv is ``[python, -m, poptrain.train, *kept overrides, *new params, checkpoint=...]`` where every
value is rendered in Hydra's override grammar (quoted when it holds spaces, ``=``, quotes, ...), so values
survive the round trip exactly. No string surgery on a joined command line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

RESTART_ENV = "POPTRAIN_PBT_RESTART"

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


def merge_overrides(overrides: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """``overrides`` without those that set a key of ``values``, then ``key=value`` for each of ``values``.

    A replaced override keeps its ``+``/``++`` prefix: ``+task.env.extra=1`` adds a key the defaults lack, and
    ``task.env.extra=2`` would fail to compose (the member died at its first restart). A key the member deleted
    with ``~`` and now sets gets ``++`` (add or override)."""
    kept, prefix = [], {}
    for o in overrides:
        key = override_key(o)
        if key not in values:
            kept.append(o)
            continue
        head = o.split("=", 1)[0]
        prefix[key] = "++" if head.startswith(("++", "~")) else "+" if head.startswith("+") else ""
    return kept + [f"{prefix.get(k, '')}{k}={hydra_value(v)}" for k, v in values.items()]


def restart_argv(overrides: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """The full argv of the restarted member. ``overrides`` are the member's own command line; ``values``
    (new params, checkpoint) pass the ``untrusted.refusal`` key rule here as a last gate (one warning)."""
    from poptrain.untrusted import safe_params

    values = safe_params(values, None, "PBT restart")
    return [sys.executable, "-m", "poptrain.train", *merge_overrides(overrides, values)]


def restart_process(argv: list[str], state: Mapping[str, Any], writer: Any = None) -> None:
    """Replace this process with ``argv`` (os.execv); ``state`` travels in an environment variable.

    Never returns. Flushes TensorBoard and stdio first so nothing already logged is lost.
    """
    if writer is not None:
        try:
            writer.flush()
        except Exception:  # noqa: BLE001 - a flush failure must not stop the restart
            log.warning("could not flush the TensorBoard writer before restart", exc_info=True)
    os.environ[RESTART_ENV] = json.dumps(dict(state))
    log.info("PBT restart: %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def pop_restart_state() -> dict[str, Any] | None:
    """The state a restarting parent left (and remove it so a later crash-resume is not mistaken)."""
    raw = os.environ.pop(RESTART_ENV, None)
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except json.JSONDecodeError:
        log.warning("ignoring malformed %s", RESTART_ENV)
        return None
    return state if isinstance(state, dict) else None
