"""Restart a population member with new hyperparameters: argv rebuilt from overrides, then os.execv.

The argv is ``[python, -m, poptrain.train, *kept overrides, *new params, checkpoint=...]`` where every
value is rendered in Hydra's override grammar by ``poptrain.overrides.render`` (quoted when it holds spaces,
``=``, quotes, ...), so values survive the round trip exactly. No string surgery on a joined command line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from poptrain.overrides import merge_overrides, render

log = logging.getLogger(__name__)

RESTART_ENV = "POPTRAIN_PBT_RESTART"


def restart_argv(overrides: Iterable[str], values: Mapping[str, Any]) -> list[str]:
    """The full argv of the restarted member. ``overrides`` are the member's own command line; ``values``
    (new params, checkpoint) pass the ``untrusted.refusal`` key rule here as a last gate (one warning)."""
    from poptrain.untrusted import safe_params

    values = safe_params(values, None, "PBT restart")
    updates = [render(k, v) for k, v in values.items()]
    return [sys.executable, "-m", "poptrain.train", *merge_overrides(list(overrides), updates)]


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
