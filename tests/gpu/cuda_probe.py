"""A launcher child that reports what CUDA it sees (run by test_gpu_population.py through the processes backend).

Writes ``<train_dir>/<experiment>/cuda.json``: CUDA_VISIBLE_DEVICES, torch's device count, and the UUID and
name of device 0 (the one a pinned child trains on), plus where a freshly allocated tensor landed.
"""

import json
import os
import sys
import time

import torch


def option(name: str) -> str:
    for arg in sys.argv[1:]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise SystemExit(f"missing --{name}=")


out_dir = os.path.join(option("train_dir"), option("experiment"))
os.makedirs(out_dir, exist_ok=True)
record: dict = {
    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "cuda": torch.cuda.is_available(),
}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    record.update(
        device_count=torch.cuda.device_count(),
        uuid=str(getattr(props, "uuid", "")),
        name=props.name,
        tensor_device=str(torch.ones(4, device="cuda").device),
    )
time.sleep(float(option("sleep")))
with open(os.path.join(out_dir, "cuda.json.tmp"), "w") as f:
    json.dump(record, f)
os.replace(os.path.join(out_dir, "cuda.json.tmp"), os.path.join(out_dir, "cuda.json"))
