"""IsaacGymEnvs-style cluster templates and flags (issue 9, point 3): they render as IGE's launcher would, or
are refused with one error naming the unsupported placeholder; IGE's flag value syntax is accepted."""

from __future__ import annotations

import shlex
import sys
import time

import pytest
from launcher_helpers import child_run
from test_render import _fake_sbatch

from poptrain.errors import ConfigError
from poptrain.launcher.backends import JobState
from poptrain.launcher.backends.ngc import NgcBackend
from poptrain.launcher.backends.slurm import SlurmBackend, slurm_time_seconds
from poptrain.launcher.run import parse_args
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

# The shape of IGE's launcher/slurm/sbatch_timeout.sh: run under coreutils timeout, resubmit itself on 124.
IGE_SBATCH = """#!/bin/bash
source ~/venv/bin/activate
cd ~/project || exit

timeout $TIMEOUT $CMD
if [[ $$? -eq 124 ]]; then
    sbatch ${PARTITION}--gres=gpu:$GPU -c $CPU --parsable --output $FILENAME-slurm-%j.out $FILENAME
fi
"""

# The shape of an IGE run_ngc job template: one command line, continued with backslashes.
IGE_NGC = """ngc batch run --name "{{ name }}" --instance dgxa100.80g.1.norm \\
  --image "nvcr.io/me/isaacgym:1" --workspace ws:/ws:RW \\
  --commandline "cd /ws/project && {{ experiment_cmd }}" --result /results
"""


def planned(tmp="/td"):
    rd = RunDescription(
        "pbt", [Experiment("ant", ["python", "train.py"], ParamGrid([("seed", [1, 2])]))],
        experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    )  # fmt: skip
    return list(rd.plan(tmp, makedirs=False))


def test_an_ige_sbatch_template_renders_as_run_slurm_would_plus_the_resource_request() -> None:
    backend = SlurmBackend(workdir="/sw", template=IGE_SBATCH, gpus_per_job=1, cpus_per_gpu=8,
                           partition="gpu", timeout="1:00:00")  # fmt: skip
    text = backend.render(planned())[0].text
    script = "/sw/pbt/00_ant_see_1.sbatch"
    cmd = "python train.py seed=1 experiment=00_ant_see_1 train_dir=/td/pbt/ant"
    assert text == (
        "#!/bin/bash\n"
        "#SBATCH --job-name=pbt-00_ant_see_1\n"
        "#SBATCH --output=/td/pbt/ant/00_ant_see_1/log.txt\n"
        "#SBATCH --open-mode=append\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\n"
        "#SBATCH --gres=gpu:1\n#SBATCH --partition=gpu\n"  # no --time: the template times out itself
        "#SBATCH --no-requeue\n"
        "# poptrain experiment 00_ant_see_1 of run pbt (IsaacGymEnvs-style template)\n"
        "source ~/venv/bin/activate\ncd ~/project || exit\n\n"
        f"timeout 3600 {cmd}\n"
        "if [[ $? -eq 124 ]]; then\n"
        f"    sbatch -p gpu --gres=gpu:1 -c 8 --parsable --output {script}-slurm-%j.out {script}\n"
        "fi\n"
    )


@pytest.mark.parametrize("template, named", [
    ("#!/bin/bash\necho $HOME\n$CMD\n", r"unsupported placeholder \$HOME .*valid: \$CMD, \$FILENAME"),
    ("#!/bin/bash\n$CMD ${NODES}\n", r"unsupported placeholder \$NODES"),
    ("#!/bin/bash\n$CMD > out 2>&1 &\necho $\n", r"line 3: a '\$' that starts no placeholder"),
    ("#!/bin/bash\nconda activate env\ncd ~/project\n", r"never runs the experiment \(no \{\{cmd\}\}"),
])  # fmt: skip
def test_unsupported_ige_placeholders_are_refused_naming_them(template, named) -> None:
    with pytest.raises(ConfigError, match=named):
        SlurmBackend(template=template, template_source="--slurm_sbatch_template t.sh")


def test_an_ige_ngc_template_renders_with_the_command_inside_the_quoted_commandline() -> None:
    job = NgcBackend(template=IGE_NGC).render(planned())[1]
    assert job.argv == [
        "ngc", "batch", "run", "--name", "01_ant_see_2", "--instance", "dgxa100.80g.1.norm",
        "--image", "nvcr.io/me/isaacgym:1", "--workspace", "ws:/ws:RW", "--commandline",
        "cd /ws/project && python train.py seed=2 experiment=01_ant_see_2 train_dir=/td/pbt/ant",
        "--result", "/results",
    ]  # fmt: skip
    assert shlex.split(job.text) == job.argv
    with pytest.raises(ConfigError, match=r"unsupported placeholder \{\{ instance_type \}\}"):
        NgcBackend(template=IGE_NGC.replace("dgxa100.80g.1.norm", "{{ instance_type }}"))


def test_ige_flag_values_and_slurm_time_formats_are_accepted() -> None:
    args = parse_args(["--run", "m", "--backend", "slurm", "--slurm_print_only", "True", "--slurm_requeue",
                       "--slurm_wait", "false", "--dry_run", "False", "--slurm_timeout", "2-12:30"])  # fmt: skip
    assert (args.slurm_print_only, args.slurm_requeue, args.slurm_wait, args.dry_run) == (
        True,
        True,
        False,
        False,
    )
    assert parse_args(["--run", "m", "--backend", "ngc", "--ngc_print_only", "True"]).ngc_print_only is True
    with pytest.raises(SystemExit):
        parse_args(["--run", "m", "--backend", "slurm", "--slurm_print_only", "maybe"])
    for value, seconds in [("90", 5400), ("1:30", 90), ("1:00:00", 3600), ("2-12", 216000),
                           ("1-0:30", 88200), ("1-00:00:05", 86405), ("UNLIMITED", 0), ("0", 0)]:  # fmt: skip
        SlurmBackend(timeout=value)
        assert slurm_time_seconds(value) == seconds, value
    with pytest.raises(ConfigError, match="--slurm_timeout '1:2:3:4'"):
        SlurmBackend(timeout="1:2:3:4")


def test_pause_between_spreads_slurm_and_ngc_submissions(tmp_path, monkeypatch, fake_ngc) -> None:
    _fake_sbatch(tmp_path, monkeypatch, fail_on="nothing")  # knows no job afterwards: nothing pends
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    for backend in (
        SlurmBackend(workdir=str(tmp_path / "sw"), pause_between=2.5),
        NgcBackend(pause_between=2.5),
    ):
        sleeps.clear()
        backend.submit(backend.render(planned(str(tmp_path))))
        assert sleeps == [2.5], (type(backend).__name__, sleeps)  # between the two submissions, not after


@pytest.mark.slurm
def test_an_ige_sbatch_template_runs_the_command_on_the_local_cluster(slurm_cluster, tmp_path) -> None:
    template = "#!/bin/bash\ncd $$HOME\ntimeout $TIMEOUT $CMD\necho exit=$$?\n"
    backend = SlurmBackend(
        workdir=str(tmp_path / "sw"), template=template, gpus_per_job=0, poll_interval_s=0.5
    )
    plan = list(child_run("ige", [{"i": 1}]).plan(str(tmp_path / "td")))
    backend.submit(backend.render(plan))
    statuses = backend.wait(timeout_s=180)
    assert [s.state for s in statuses] == [JobState.COMPLETED], statuses
    log = (tmp_path / "td" / "t" / "ige" / plan[0].name / "log.txt").read_text()
    assert f"child {plan[0].name} done" in log and "exit=0" in log, log
    assert sys.executable in backend.render(plan)[0].text


def test_a_placeholder_template_that_would_silently_request_no_gpu_is_refused() -> None:
    template = "#!/bin/bash\n#SBATCH -J {{job_name}}\n{{cmd}}\n"
    with pytest.raises(ConfigError, match=r"--slurm_gpus_per_job 2 but the template never requests a GPU"):
        SlurmBackend(template=template, gpus_per_job=2)
    SlurmBackend(template=template, gpus_per_job=0)  # a CPU job needs no GPU request
    SlurmBackend(template=template.replace("{{cmd}}", "srun --gpus={{gpus_per_job}} {{cmd}}"), gpus_per_job=2)
