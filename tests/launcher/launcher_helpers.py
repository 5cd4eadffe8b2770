"""Helpers shared by the launcher tests: a child-script RunDescription, finding the local SLURM and Ray clusters."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import poptrain
from poptrain.launcher.run_description import Experiment, ParamList, RunDescription

HERE = Path(__file__).parent
CHILD = str(HERE / "child.py")
DEFAULT_SLURM_CONF = "/tmp/poptrain-slurm/slurm.conf"
DEFAULT_RAY_DIR = "/tmp/poptrain-ray"
POPTRAIN_SRC = str(Path(poptrain.__file__).resolve().parent.parent)
"""The folder this poptrain is imported from: Ray workers get it on PYTHONPATH, so they run the same code."""


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


@functools.lru_cache(maxsize=1)
def ray_address_or_reason() -> tuple[str | None, str]:
    """(HOST:PORT, '') when the local Ray head of scripts/ray-local.sh answers, else (None, why not)."""
    if importlib.util.find_spec("ray") is None:
        return None, "no Ray: the ray package is not installed (pip install 'poptrain[ray]')"
    ray_dir = os.environ.get("POPTRAIN_RAY_DIR", DEFAULT_RAY_DIR)
    try:
        address = Path(ray_dir, "address").read_text().strip()
    except OSError:
        return None, f"no Ray head: {ray_dir}/address missing (run: bash scripts/ray-local.sh start)"
    port = os.environ.get("POPTRAIN_RAY_DASHBOARD_PORT", "8265")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5) as answer:
            if answer.status != 200:
                return None, f"no Ray head: its dashboard answered {answer.status}"
    except OSError as exc:
        return None, f"no Ray head: dashboard on 127.0.0.1:{port} does not answer ({exc})"
    return address, ""


def ray_runtime_env() -> dict:
    """Makes Ray's workers import the poptrain under test (and the members they start inherit it)."""
    return {"env_vars": {"PYTHONPATH": POPTRAIN_SRC}}
