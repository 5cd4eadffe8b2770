"""Launcher input that must not break out of what it is rendered into: newlines in sbatch values, rich markup
in a child's log line (issue 10, point 3)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from poptrain.errors import ConfigError
from poptrain.launcher.backends import JobState, JobStatus
from poptrain.launcher.backends.slurm import SlurmBackend
from poptrain.launcher.run import StatusDisplay
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription


def _planned(train_dir: str):
    rd = RunDescription(
        "run", [Experiment("cp", ["python", "-m", "poptrain.train"], ParamGrid([("lr", [0.001])]))],
        experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    )  # fmt: skip
    return list(rd.plan(train_dir, makedirs=False))


@pytest.mark.parametrize("partition", ["gpu\ntouch /tmp/pwned", "gpu\r", "a b", "gpu;id", "'gpu'"])
def test_a_partition_that_is_not_a_name_is_refused(partition):
    with pytest.raises(ConfigError, match="--slurm_partition.*valid: partition names"):
        SlurmBackend(workdir="/sw", gpus_per_job=0, partition=partition)
    assert SlurmBackend(workdir="/sw", gpus_per_job=0, partition="gpu,debug-2").partition == "gpu,debug-2"


@pytest.mark.parametrize("train_dir", ["/td\ntouch /tmp/pwned", "/td\r#SBATCH --x", "/td\x00"])
def test_a_newline_in_train_dir_is_refused_before_any_script_is_written(train_dir, tmp_path):
    backend = SlurmBackend(workdir=str(tmp_path / "sw"), gpus_per_job=0)
    with pytest.raises(ConfigError, match="newline or NUL.*single line"):
        backend.render(_planned(train_dir))
    assert not (tmp_path / "sw").exists()


def test_every_rendered_sbatch_line_is_one_directive_or_command():
    text = SlurmBackend(workdir="/sw", gpus_per_job=0, partition="gpu").render(_planned("/td x"))[0].text
    assert "#SBATCH --partition=gpu\n" in text and "cd " in text


def test_markup_in_a_childs_log_line_is_shown_as_text():
    statuses = [
        JobStatus("00_[bold]cp", JobState.RUNNING, last_line="could not read [/data/x.yaml] \x1b[31m"),
        JobStatus("01_cp", JobState.FAILED, last_line="[/]"),
    ]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(StatusDisplay._table(statuses))
    text = out.getvalue()
    assert "could not read [/data/x.yaml]" in text and "00_[bold]cp" in text and "[/]" in text
    assert "\x1b" not in text
