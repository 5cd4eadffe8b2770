"""The backend registry: each backend module registers itself, and the CLI (choices, flags, the wait flag) and
the contract suite derive from it; a new backend needs no list edited elsewhere."""

from __future__ import annotations

import argparse
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from contract_backends import FACTORIES

from poptrain.errors import LaunchError
from poptrain.launcher import backends
from poptrain.launcher.backends import (
    Backend,
    JobStatus,
    RenderedJob,
    backend_classes,
    backend_names,
    register_backend,
)
from poptrain.launcher.run import main, parse_args
from poptrain.launcher.run_description import PlannedExperiment


def test_every_backend_module_registers_its_backend() -> None:
    classes = backend_classes()
    assert list(classes) == ["ngc", "processes", "ray", "slurm"]
    for name, cls in classes.items():
        assert cls.name == name and cls.__module__ == f"poptrain.launcher.backends.{name}"
    assert set(FACTORIES) == set(classes), "every registered backend joins the contract suite"


@pytest.mark.parametrize("name", ["slurm", "ngc"])
def test_a_detached_backend_watches_only_with_its_wait_flag(name: str) -> None:
    base = ["--run", "m", "--backend", name, f"--{name}_print_only"]
    cls = backend_classes()[name]
    assert not cls.from_args(parse_args(base)).watch
    assert cls.from_args(parse_args([*base, f"--{name}_wait"])).watch
    assert not cls.from_args(parse_args([*base, f"--{name}_wait", "False"])).watch
    assert backend_classes()["processes"].from_args(parse_args(["--run", "m"])).watch  # attached: always
    assert (
        backend_classes()["ray"].from_args(parse_args(["--run", "m", "--backend", "ray", "--ray_wait"])).watch
    )


def test_register_backend_refuses_a_bad_or_taken_name() -> None:
    class Taken(Backend):
        name = "slurm"

    class Bad(Backend):
        name = "Has Space"

    backend_classes()
    with pytest.raises(TypeError, match="--backend slurm is registered twice"):
        register_backend(Taken)
    with pytest.raises(TypeError, match="'Has Space': valid: lower-case letters"):
        register_backend(Bad)
    assert backend_classes()["slurm"].__name__ == "SlurmBackend"


class _Echo(Backend):
    """A backend defined outside the package, as a new one would be: it 'runs' a job by recording it."""

    name = "echo_test"

    def __init__(self, wait: bool) -> None:
        self.asked_to_wait = wait
        self._statuses: list[JobStatus] = []

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser) -> None:
        cls.add_wait_flag(parser.add_argument_group("echo_test backend"))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Echo:
        return cls(wait=args.echo_test_wait)

    def render(self, planned: Sequence[PlannedExperiment]) -> list[RenderedJob]:
        return [RenderedJob(planned=p, text=f"echo {p.name}") for p in planned]


@pytest.fixture
def echo_backend() -> Iterator[type[Backend]]:
    backend_classes()
    register_backend(_Echo)
    yield _Echo
    del backends._REGISTRY["echo_test"]


def test_a_registered_backend_is_a_cli_choice_with_its_own_flags(
    echo_backend, tmp_path: Path, monkeypatch, capsys
):
    assert "echo_test" in backend_names()
    args = parse_args(["--run", "m", "--backend", "echo_test", "--echo_test_wait"])
    assert args.echo_test_wait is True and echo_backend.from_args(args).watch
    with pytest.raises(SystemExit):
        parse_args(["--run", "m", "--echo_test_wait"])  # the flag belongs to its backend only
    assert "unrecognized arguments: --echo_test_wait (backend processes)" in capsys.readouterr().err
    module = f"echo_mod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from poptrain.launcher.run_description import Experiment, ParamList, RunDescription
            RUN_DESCRIPTION = RunDescription("e", [Experiment("x", ["true"], ParamList([{"i": 1}]).generate_params(randomize=False))])
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        main(["--run", module, "--backend", "echo_test", "--dry_run", "--train_dir", str(tmp_path / "td")])
        == 0
    )
    out = capsys.readouterr().out
    assert "echo 00_x_i_1" in out and "nothing started (echo_test)" in out
    with pytest.raises(LaunchError, match="--backend echo_test cannot stop single jobs"):
        echo_backend(wait=False).cancel_jobs([])
