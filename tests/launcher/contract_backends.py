"""How the contract suite (test_contract.py) builds each registered backend against a real (or faithfully faked)
cluster. The suite runs once per name in the backend registry; a registered backend without a factory here
fails the suite, so a new backend is its module plus a factory here plus its own tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from launcher_helpers import ray_runtime_env

from poptrain.launcher.backends import Backend, backend_classes

Factory = Callable[[pytest.FixtureRequest, Path], Backend]
FACTORIES: dict[str, Factory] = {}


def contract_factory(name: str) -> Callable[[Factory], Factory]:
    """Register how the contract suite builds backend ``name`` (fixtures it needs come from ``request``)."""

    def register(factory: Factory) -> Factory:
        FACTORIES[name] = factory
        return factory

    return register


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The contract suite's instance of backend ``name``; fails naming the missing factory."""
    if name not in FACTORIES:
        pytest.fail(
            f"--backend {name} is registered but has no contract factory; add @contract_factory({name!r}) "
            f"to {__file__}"
        )
    backend = FACTORIES[name](request, tmp_path)
    assert isinstance(backend, backend_classes()[name])
    return backend


@contract_factory("processes")
def _processes(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    from poptrain.launcher.backends.processes import ProcessesBackend

    return ProcessesBackend(max_parallel=2, pause_between=0, poll_interval_s=0.05, kill_grace_s=3)


@contract_factory("slurm")
def _slurm(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The real local cluster (skipped without it: bash scripts/slurm-local.sh start)."""
    from poptrain.launcher.backends.slurm import SlurmBackend

    request.getfixturevalue("slurm_cluster")
    return SlurmBackend(
        workdir=str(tmp_path / "slurm_workdir"), gpus_per_job=0, cpus_per_gpu=1, poll_interval_s=0.3
    )


@contract_factory("ngc")
def _ngc(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A recording fake ``ngc`` on PATH that runs the rendered --commandline with bash (quoting end to end)."""
    from poptrain.launcher.backends.ngc import NgcBackend

    request.getfixturevalue("fake_ngc")
    return NgcBackend(workspace="ws", workdir=os.getcwd(), poll_interval_s=0.1)


@contract_factory("ray")
def _ray(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The real local Ray head (skipped without it: bash scripts/ray-local.sh start; CI requires it)."""
    from poptrain.launcher.backends.ray import RayBackend

    address = request.getfixturevalue("ray_cluster")
    return RayBackend(address=address, runtime_env=ray_runtime_env(), poll_interval_s=0.1, kill_grace_s=3)
