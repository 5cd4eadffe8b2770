"""The poptrain-launch CLI: exit codes, summaries, plain-line output, bad input, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from launcher_helpers import CHILD

from poptrain.launcher.backends import backend_names
from poptrain.launcher.run import main, parse_args


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    """A uniquely named RUN_DESCRIPTION module importable for this test."""
    name = f"launch_mod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def child_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, combos: list[dict]) -> str:
    return write_module(
        tmp_path,
        monkeypatch,
        f"""
        import sys
        from poptrain.launcher.run_description import Experiment, ParamList, RunDescription
        RUN_DESCRIPTION = RunDescription("cli", [Experiment("c", [sys.executable, {CHILD!r}],
                                         ParamList({combos!r}).generate_params(randomize=False))])
        """,
    )


def test_all_succeed_exit_0_with_plain_lines_when_not_a_tty(tmp_path, monkeypatch, capsys) -> None:
    mod = child_module(tmp_path, monkeypatch, [{"i": 1}, {"i": 2}])
    code = main(["--run", mod, "--train_dir", str(tmp_path / "td"), "--pause_between", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "[launcher] 00_c_i_1" in out and ": completed" in out
    assert "summary: 2 completed" in out
    assert (tmp_path / "td" / "cli" / "c" / "01_c_i_2" / "log.txt").exists()


def test_a_failure_gives_exit_1_and_a_summary_naming_it(tmp_path, monkeypatch, capsys) -> None:
    mod = child_module(tmp_path, monkeypatch, [{"exit_code": 0}, {"exit_code": 4}])
    code = main(["--run", mod, "--train_dir", str(tmp_path / "td"), "--pause_between", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "summary: 1 completed, 1 failed" in err
    assert "FAILED: 01_c_e.cod_4 — exit code 4" in err


def test_dry_run_lists_and_starts_nothing(tmp_path, monkeypatch, capsys) -> None:
    mod = child_module(tmp_path, monkeypatch, [{"i": 1}, {"i": 2}])
    for backend in backend_names():
        code = main(["--run", mod, "--train_dir", str(tmp_path / "td"), "--backend", backend, "--dry_run"])
        out = capsys.readouterr().out
        assert code == 0
        assert out.count("# 0") == 2 and f"nothing started ({backend})" in out
    assert not (tmp_path / "td").exists()
    assert not (Path.cwd() / "slurm_workdir" / "cli").exists()


def test_import_errors_exit_1_naming_the_problem(tmp_path, monkeypatch, capsys) -> None:
    assert main(["--run", "no_such_module_xyz"]) == 1
    assert "--run no_such_module_xyz: no such module" in capsys.readouterr().err
    empty = write_module(tmp_path, monkeypatch, "X = 1\n")
    assert main(["--run", empty]) == 1
    assert "defines no RUN_DESCRIPTION" in capsys.readouterr().err
    wrong = write_module(tmp_path, monkeypatch, "RUN_DESCRIPTION = 'x'\n")
    assert main(["--run", wrong]) == 1
    assert "RUN_DESCRIPTION is a str" in capsys.readouterr().err
    raising = write_module(tmp_path, monkeypatch, "raise RuntimeError('boom at import')\n")
    assert main(["--run", raising]) == 1
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last)") == 1 and "boom at import" in err
    assert "importing it failed (traceback above)" in err


def test_bad_arguments(tmp_path, monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--run", "m", "--backend", "kubernetes"])
    assert exc.value.code == 2 and "invalid choice: 'kubernetes'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        parse_args(["--run", "m", "--slurm_partition", "gpu"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments: --slurm_partition gpu (backend processes)" in err
    assert "--max_parallel" in err and "--experiments_per_gpu" in err
    assert (
        parse_args(["--run", "m", "--backend", "slurm", "--slurm_partition", "gpu"]).slurm_partition == "gpu"
    )
    mod = child_module(tmp_path, monkeypatch, [{"i": 1}])
    assert main(["--run", mod, "--max_parallel", "0", "--train_dir", str(tmp_path / "td")]) == 2
    assert "--max_parallel 0: valid: an integer >= 1" in capsys.readouterr().err


def test_missing_cluster_cli_is_reported_with_the_print_only_hint(tmp_path, monkeypatch, capsys) -> None:
    mod = child_module(tmp_path, monkeypatch, [{"i": 1}])
    monkeypatch.setenv("PATH", str(tmp_path / "empty_bin"))
    code = main(
        [
            "--run",
            mod,
            "--backend",
            "slurm",
            "--slurm_workdir",
            str(tmp_path / "sw"),
            "--train_dir",
            str(tmp_path / "td"),
        ]
    )
    assert code == 1
    assert "'sbatch' is not on PATH; install its CLI, or use --slurm_print_only" in capsys.readouterr().err
    code = main(
        ["--run", mod, "--backend", "ngc", "--ngc_workspace", "ws", "--train_dir", str(tmp_path / "td")]
    )
    assert code == 1
    assert "'ngc' is not on PATH; install its CLI, or use --ngc_print_only" in capsys.readouterr().err


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as dead
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_child_process_group(tmp_path, monkeypatch, sig) -> None:
    mod = child_module(tmp_path, monkeypatch, [{"sleep": 60, "spawn": 1, "i": i} for i in range(3)])
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "poptrain.launcher.run", "--run", mod, "--train_dir", str(tmp_path / "td"),
         "--pause_between", "0", "--max_parallel", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out_dirs = [tmp_path / "td" / "cli" / "c" / f"0{i}_c_sle_60_spa_1_i_{i}" for i in range(2)]
    pid_files = [d / "grandchild.pid" for d in out_dirs]
    try:
        deadline = time.monotonic() + 120  # generous: children import poptrain on a loaded machine
        while not all(p.exists() and p.read_text() for p in pid_files):
            assert time.monotonic() < deadline and launcher.poll() is None, "children did not start"
            time.sleep(0.1)
        spawned = [int(p.read_text()) for p in pid_files]
        spawned += [json.loads((d / "argv.json").read_text())["pid"] for d in out_dirs]
        launcher.send_signal(sig)
        out, _ = launcher.communicate(timeout=30)
        assert launcher.returncode == 128 + sig, out
        assert "summary: 3 cancelled" in out
        time.sleep(0.2)
        assert not any(_pid_alive(pid) for pid in spawned), "orphans left behind"
    finally:  # never leave processes behind, even when the test fails
        launcher.kill()
        launcher.wait()
        for p in pid_files:
            if p.exists() and p.read_text():
                _kill(int(p.read_text()))
        for d in out_dirs:
            if (d / "argv.json").exists():
                _kill(json.loads((d / "argv.json").read_text())["pid"])


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
