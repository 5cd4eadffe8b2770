"""train.tune_allocator: freed tensor memory is reused in-process instead of being page-faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHURN = """
import resource, torch
from poptrain.train import tune_allocator
applied = tune_allocator()
def churn():
    blocks = [torch.ones(1 << 20) for _ in range(8)]  # 8 x 4 MiB, written
    del blocks
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(tuning: str) -> tuple[bool, int]:
    env = {**os.environ, "POPTRAIN_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", CHURN], env=env, capture_output=True, text=True, timeout=120, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuned_allocator_reuses_freed_tensor_memory():
    applied, tuned = page_faults("1")
    disabled, default = page_faults("0")
    assert applied and not disabled
    # 20 rounds x 32 MiB freshly mapped = ~160k faults with glibc's defaults; the tuned heap reuses the blocks
    assert default > 50_000
    assert tuned < default / 10
