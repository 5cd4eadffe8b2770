"""Helpers shared by the launcher tests: a child-script RunDescription, finding the local SLURM cluster."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from poptrain.launcher.run_description import Experiment, ParamList, RunDescription

HERE = Path(__file__).parent
CHILD = str(HERE / "child.py")
DEFAULT_SLURM_CONF = "/tmp/poptrain-slurm/slurm.conf"


def child_run(
    name: str, combos: list[dict], run_name: str = "t", env_vars: dict | None = None
) -> RunDescription:
    """A RunDescription whose experiments run tests/launcher/child.py (argparse style)."""
    return RunDescription(
        run_name,
        [
            Experiment(
                name,
                [sys.executable, CHILD],
                ParamList(combos).generate_params(randomize=False),
                env_vars=env_vars,
            )
        ],
    )


@functools.lru_cache(maxsize=1)
def slurm_conf_or_reason() -> tuple[str | None, str]:
    """(SLURM_CONF, '') when the local cluster answers, else (None, why not)."""
    conf = os.environ.get("SLURM_CONF") or DEFAULT_SLURM_CONF
    if not os.path.exists(conf):
        return None, f"no SLURM cluster: {conf} missing (run: bash scripts/slurm-local.sh start)"
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return None, "no SLURM cluster: sbatch/scontrol not on PATH (run: bash scripts/slurm-local.sh start)"
    env = dict(os.environ, SLURM_CONF=conf)
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env, timeout=10)
    except subprocess.TimeoutExpired:
        return None, "no SLURM cluster: scontrol ping timed out"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip()).splitlines()[:1]
        return None, f"no SLURM cluster: scontrol ping says {said} (run: bash scripts/slurm-local.sh start)"
    return conf, ""
