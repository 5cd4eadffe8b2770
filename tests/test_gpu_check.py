"""scripts/gpu-check.sh, proven on the CPU before any GPU minute is spent.

- the dry run (``--cpu-dry-run``): builds a local wheelhouse, installs it offline into a temp folder, runs every
  part with tiny sizes and its own timeout, and leaves in $OUT exactly the files the device returns;
- the GPU plan: its arguments exist in the scripts they call, its sizes are the issue's, its timeouts fit;
- the $OUT check flags what the device would not return.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
assert SPEC and SPEC.loader
gpu_check = importlib.util.module_from_spec(SPEC)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
SPEC.loader.exec_module(gpu_check)

EXPECTED_FILES = {"gpu-check.log", "figures.json", "environment.json", "junit.xml"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    env = dict(os.environ, OUT=str(out), PY=sys.executable)
    proc = subprocess.run(
        ["bash", "scripts/gpu-check.sh", "--cpu-dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return proc, out


def test_dry_run_succeeds_and_out_holds_exactly_the_returned_files(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == EXPECTED_FILES  # <= 8 files, none in a folder, plain names
    assert gpu_check.check_out(out) == []
    figures = json.loads((out / "figures.json").read_text())
    assert figures["mode"] == "cpu-dry-run" and figures["out_problems"] == []
    assert sorted(figures["out_files"]) == sorted(EXPECTED_FILES)
    # the expected durations and timeouts are printed up front, then one header per part
    log = (out / "gpu-check.log").read_text()
    assert re.search(r"^throughput\s+\d+\s+\d+$", log, re.M)
    for part in figures["parts"]:
        assert f"== {part['name']}: expected ~" in log


def test_dry_run_installs_the_local_wheel_offline_and_runs_it(dry_run):
    _, out = dry_run
    env = json.loads((out / "environment.json").read_text())
    # poptrain came from the wheel installed into the temp site, not from src/
    assert env["poptrain_from"].endswith("/site/poptrain") and "/src/" not in env["poptrain_from"]
    assert env["torch"]["available"] is False and env["packages"]["poptrain"]
    log = (out / "gpu-check.log").read_text()
    assert "--no-index" in log and "--no-deps" in log and "poptrain-" in log


def test_dry_run_parts_statuses_and_figures(dry_run):
    _, out = dry_run
    figures = json.loads((out / "figures.json").read_text())
    status = {p["name"]: p for p in figures["parts"]}
    assert list(status) == ["install", "environment", "tests", "throughput", "playground", "pbt_overhead",
                            "population"]  # fmt: skip
    for name, part in status.items():
        if name == "playground":  # 3 s on purpose: killed, recorded, and the check went on
            assert part["status"] == "timeout" and "killed after 3 s" in part["note"]
        else:
            assert part["status"] == "ok", part
        assert part["timeout_s"] > 0 and part["expected_s"] > 0
    # the gpu tests are collected and skip cleanly without CUDA
    tests = figures["tests"]
    assert tests["tests"] >= 11 and tests["skipped"] == tests["tests"]
    # the figures each benchmark wrote
    assert [r["envs"] for r in figures["throughput"]["rows"]] == [64]
    assert figures["throughput"]["device"] == "cpu" and figures["throughput"]["rows"][0]["wall"]["b/c"] > 0
    assert figures["playground"] is None  # killed before it wrote anything
    assert [r["population"] for r in figures["pbt_overhead"]["b"]] == [4]
    population = figures["population"]
    assert [m["state"] for m in population["members"]] == ["finished", "finished"]
    assert all(m["frames"] == 2 * 32 * 16 for m in population["members"])


def test_gpu_plan_has_the_issue_sizes_and_fits_in_seven_minutes(tmp_path):
    parts = gpu_check.plan(False, "python3", tmp_path, tmp_path / "site", tmp_path / "whl", tmp_path / "out")
    by = {p.name: p for p in parts}
    assert gpu_check.DEADLINE_S <= 420 and sum(p.expected_s for p in parts) < gpu_check.DEADLINE_S
    assert all(p.timeout_s > p.expected_s for p in parts) and not any(p.expect_timeout for p in parts)
    install = by["install"].argv
    assert {"--no-index", "--no-deps", "--find-links"} <= set(install) and "-r" in install
    tp = by["throughput"].argv
    assert tp[tp.index("--device") + 1] == "cuda"
    assert tp[tp.index("--envs") + 1 : tp.index("--envs") + 4] == ["4096", "16384", "65536"]
    pg = by["playground"].argv
    assert pg[pg.index("--task") + 1] == "CheetahRun" and pg[pg.index("--num-envs") + 1] == "4096"
    assert by["pbt_overhead"].env["PBT_BENCH_DEVICE"] == "cuda"
    pop = by["population"].argv
    assert pop[pop.index("--num_gpus") + 1] == "1" and pop[pop.index("--experiments_per_gpu") + 1] == "4"
    # the generated population module: 4 AcrobotHard members on CUDA
    sys.path.insert(0, str(tmp_path / "modules"))
    try:
        module = importlib.import_module("gpu_check_acrobot")
    finally:
        sys.path.remove(str(tmp_path / "modules"))
        sys.modules.pop("gpu_check_acrobot", None)
    planned = list(module.RUN_DESCRIPTION.plan(str(tmp_path / "train"), makedirs=False))
    assert len(planned) == 4
    assert all("task=AcrobotHard" in p.argv and "rl_device=cuda" in p.argv for p in planned)


def test_gpu_plan_flags_exist_in_the_scripts_it_calls(tmp_path):
    parts = gpu_check.plan(False, sys.executable, tmp_path, tmp_path / "s", tmp_path / "w", tmp_path / "o")
    for part in parts:
        if len(part.argv) < 2 or not part.argv[1].startswith("benchmarks/"):
            continue
        helptext = subprocess.run(
            [sys.executable, part.argv[1], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
            check=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        ).stdout  # fmt: skip
        for flag in (a for a in part.argv[2:] if a.startswith("--")):
            assert flag in helptext, f"{part.name}: {part.argv[1]} has no {flag}"


def test_out_check_flags_what_would_not_come_back(tmp_path):
    for i in range(9):
        (tmp_path / f"f{i}.txt").write_text("x")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    problems = gpu_check.check_out(tmp_path)
    assert any("11 files" in p for p in problems)
    assert any(p.startswith("a/b/c/deep.txt: more than 2 folders") for p in problems)
    assert any(p.startswith("bad name.txt: a name") for p in problems)
