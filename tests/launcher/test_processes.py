"""The processes backend: GPU pinning arithmetic, restarts, log layout, slot limit."""

from __future__ import annotations

import json
import os
import time

import pytest
from launcher_helpers import child_run

from poptrain.errors import ConfigError
from poptrain.launcher.backends import JobState
from poptrain.launcher.backends.processes import ProcessesBackend, pick_gpu, visible_gpu_ids


def test_visible_gpu_ids_respect_an_inherited_mask() -> None:
    assert visible_gpu_ids(2, None) == ["0", "1"]
    assert visible_gpu_ids(2, "5,7,9") == ["5", "7"]
    assert visible_gpu_ids(1, " 3 ") == ["3"]
    with pytest.raises(ConfigError, match=r"--num_gpus 3 .*CUDA_VISIBLE_DEVICES='5,7'.*<= 2"):
        visible_gpu_ids(3, "5,7")
    with pytest.raises(ConfigError, match="only 0 GPU"):
        visible_gpu_ids(1, "")


def test_pick_gpu_takes_the_least_loaded_free_gpu() -> None:
    assert pick_gpu([0, 0], 2) == 0
    assert pick_gpu([1, 0], 2) == 1
    assert pick_gpu([1, 1], 2) == 0
    assert pick_gpu([2, 1], 2) == 1
    assert pick_gpu([2, 2], 2) is None
    assert pick_gpu([], 1) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_parallel": 0}, "--max_parallel 0"),
        ({"experiments_per_gpu": 0}, "--experiments_per_gpu 0"),
        ({"experiments_per_gpu": 2, "num_gpus": 0}, "needs --num_gpus >= 1"),
        ({"max_restarts": -1}, "--max_restarts -1"),
    ],
)
def test_bad_options_name_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ProcessesBackend(**kwargs)


def _run(backend: ProcessesBackend, run, tmp_path) -> tuple[list, list]:
    planned = list(run.plan(str(tmp_path / "train")))
    backend.submit(backend.render(planned))
    return planned, backend.wait(timeout_s=60)


def test_pinning_spreads_children_over_the_inherited_gpus(tmp_path) -> None:
    backend = ProcessesBackend(
        max_parallel=8, num_gpus=2, experiments_per_gpu=1, inherited_cuda_visible_devices="5,7",
        pause_between=0, poll_interval_s=0.02,
    )  # fmt: skip
    planned, statuses = _run(backend, child_run("gpu", [{"sleep": 0.5, "i": i} for i in range(3)]), tmp_path)
    assert all(s.state is JobState.COMPLETED for s in statuses)
    seen = [
        json.load(open(os.path.join(p.output_dir, "argv.json")))["env"]["CUDA_VISIBLE_DEVICES"]
        for p in planned
    ]
    assert seen[:2] == ["5", "7"]  # the first two run at once, one per GPU
    assert seen[2] in ("5", "7")
    header = open(os.path.join(planned[0].output_dir, "log.txt")).readline()
    assert header.startswith("[launcher] attempt 1/1 CUDA_VISIBLE_DEVICES=5: ")


def test_no_pinning_by_default_inherits_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    backend = ProcessesBackend(pause_between=0, poll_interval_s=0.02)
    planned, _ = _run(backend, child_run("nopin", [{"i": 1}]), tmp_path)
    assert (
        json.load(open(os.path.join(planned[0].output_dir, "argv.json")))["env"]["CUDA_VISIBLE_DEVICES"]
        == "3"
    )


def test_restarts_are_counted_in_status_and_log(tmp_path) -> None:
    backend = ProcessesBackend(max_restarts=2, pause_between=0, poll_interval_s=0.02)
    planned, statuses = _run(backend, child_run("flaky", [{"fail_until_attempt": 3}]), tmp_path)
    assert statuses[0].state is JobState.COMPLETED and statuses[0].restarts == 2
    text = open(os.path.join(planned[0].output_dir, "log.txt")).read()
    assert text.count("child crashing on purpose") == 2
    assert "[launcher] exit code 3; restart 1/2" in text and "[launcher] exit code 3; restart 2/2" in text
    assert "[launcher] attempt 3/3" in text and text.rstrip().endswith("done")


def test_a_member_that_keeps_crashing_fails_after_max_restarts(tmp_path) -> None:
    backend = ProcessesBackend(max_restarts=1, pause_between=0, poll_interval_s=0.02)
    _, statuses = _run(backend, child_run("crash", [{"fail_until_attempt": 9}]), tmp_path)
    assert statuses[0].state is JobState.FAILED and statuses[0].restarts == 1 and statuses[0].exit_code == 3
    assert statuses[0].reason == "exit code 3 after 1 restart(s)"


def test_max_parallel_limits_concurrency_and_logs_go_to_the_experiment_folder(tmp_path) -> None:
    backend = ProcessesBackend(max_parallel=2, pause_between=0, poll_interval_s=0.02)
    planned = list(
        child_run("slots", [{"sleep": 0.4, "i": i} for i in range(4)]).plan(str(tmp_path / "train"))
    )
    backend.submit(backend.render(planned))
    most = 0
    while True:
        statuses = backend.poll()
        most = max(most, sum(s.state is JobState.RUNNING for s in statuses))
        if all(s.state.terminal for s in statuses):
            break
        time.sleep(0.02)
    assert most == 2
    for p in planned:
        assert p.output_dir == str(tmp_path / "train" / "t" / "slots" / p.name)
        assert f"child {p.name} done" in open(os.path.join(p.output_dir, "log.txt")).read()


def test_an_unstartable_command_fails_without_stopping_the_others(tmp_path) -> None:
    from poptrain.launcher.run_description import Experiment, RunDescription

    rd = RunDescription("r", [Experiment("missing", ["/nonexistent/prog"]), Experiment("ok", ["true"])])
    _, statuses = _run(ProcessesBackend(pause_between=0, poll_interval_s=0.02), rd, tmp_path)
    assert [s.state for s in statuses] == [JobState.FAILED, JobState.COMPLETED]
    assert "could not start '/nonexistent/prog'" in statuses[0].reason
