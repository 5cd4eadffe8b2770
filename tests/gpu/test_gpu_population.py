"""Several members share one GPU through the processes backend (``--num_gpus 1 --experiments_per_gpu K``).

- pinning: each child sees ``CUDA_VISIBLE_DEVICES`` set to the one GPU and, through torch, exactly that GPU
  (same UUID as the parent's view of it), and allocates there;
- a 4-member PBT population on Cartpole, all on that GPU (``rl_device=cuda``), launched with
  ``poptrain-launch ... --num_gpus 1 --experiments_per_gpu 4``: every member finishes its budget and the
  lineage records exploits (hot swaps: the mutation set is live-only).

The run descriptions are modules written into the test's temp folder and imported by the launcher process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gpu_helpers import on_cuda

from poptrain.pbt.workspace import Workspace

pytestmark = pytest.mark.gpu

HERE = Path(__file__).parent

PROBE_MODULE = """
import sys
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

RUN_DESCRIPTION = RunDescription(
    "probe",
    experiments=[Experiment("probe", [sys.executable, {probe!r}, "--sleep=1"], ParamGrid([("i", [0, 1, 2, 3])]))],
)
"""

POPULATION_MODULE = """
import sys
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

RUN_DESCRIPTION = RunDescription(
    "gpu_pbt",
    experiments=[Experiment("cartpole", {argv!r}, ParamGrid([("pbt.policy_idx", [0, 1, 2, 3])]))],
    experiment_arg_name="experiment",
    experiment_dir_arg_name="train_dir",
    param_prefix="",
    customize_experiment_name=False,
)
"""


def launch(
    tmp_path: Path, module: str, text: str, *flags: str, timeout: float
) -> subprocess.CompletedProcess:
    (tmp_path / f"{module}.py").write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    argv = [
        sys.executable, "-m", "poptrain.launcher.run", "--run", module, "--backend", "processes",
        "--train_dir", str(tmp_path / "train_dir"), "--pause_between", "0", "--num_gpus", "1", *flags,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_pinned_children_see_and_use_exactly_their_gpu(device, tmp_path):
    text = PROBE_MODULE.format(probe=str(HERE / "cuda_probe.py"))
    proc = launch(
        tmp_path, "probe_run", text, "--max_parallel", "4", "--experiments_per_gpu", "2", timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "train_dir").rglob("cuda.json"))]
    assert len(records) == 4
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    first_gpu = inherited.split(",")[0].strip() if inherited else "0"
    assert {r["CUDA_VISIBLE_DEVICES"] for r in records} == {first_gpu}
    if on_cuda(device):
        parent = torch.cuda.get_device_properties(0)  # our GPU 0 = the first visible one = the pinned one
        for r in records:
            assert r["cuda"] and r["device_count"] == 1 and r["tensor_device"] == "cuda:0"
            assert r["name"] == parent.name
            assert r["uuid"] == str(getattr(parent, "uuid", ""))


def test_four_members_share_one_gpu_and_exploit(device, tmp_path):
    envs = 1024 if on_cuda(device) else 256
    epoch = envs * 16
    argv = [
        sys.executable, "-m", "poptrain.train", "task=Cartpole", f"num_envs={envs}", "max_iterations=40",
        f"rl_device={device}", f"sim_device={device}", "train.params.config.save_frequency=0", "pbt=pbt_default",
        "pbt/mutation=default_mutation", "pbt.num_policies=4", f"pbt.interval_steps={5 * epoch}",
        f"pbt.start_after={5 * epoch}", f"pbt.initial_delay={5 * epoch}", "pbt.replace_rule=threshold",
        "pbt.threshold_std=0", "pbt.threshold_abs=0", "pbt.objective_grace_steps=0",
    ]  # fmt: skip
    text = POPULATION_MODULE.format(argv=argv)
    proc = launch(
        tmp_path, "gpu_pbt_run", text, "--max_parallel", "4", "--experiments_per_gpu", "4", timeout=900
    )
    logs = "".join(p.read_text()[-1500:] for p in (tmp_path / "train_dir").rglob("log.txt"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    ws = Workspace(tmp_path / "train_dir" / "gpu_pbt" / "cartpole" / "pbt_workspace")
    assert ws.members() == [0, 1, 2, 3]
    for m in ws.members():
        final = ws.latest(m)
        assert final is not None and final.finished and final.frames == 40 * epoch, (m, final)
    exploits = [e for e in ws.read_lineage() if e.event == "exploit"]
    assert exploits, "no exploit recorded"
    assert {e.mode for e in exploits} == {"hot_swap"}
    # each member's launcher log header names the GPU it was pinned to
    headers = [p.read_text().splitlines()[0] for p in (tmp_path / "train_dir").rglob("log.txt")]
    assert len(headers) == 4 and all("CUDA_VISIBLE_DEVICES=" in h for h in headers)
