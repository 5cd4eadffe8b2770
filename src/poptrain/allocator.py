"""glibc allocator tuning for training processes (applied by ``poptrain.build.setup_torch``)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

# glibc mallopt() parameter numbers (malloc.h) and the values tune_allocator sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit: larger blocks are still mmap'ed
_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def tune_allocator() -> bool:
    """Let freed tensor memory be reused in-process instead of going back to the OS (glibc only).

    PyTorch's CPU allocator mallocs and frees every tensor. With glibc's defaults, blocks from 128 KiB up are
    mmap'ed and unmapped, or trimmed off the heap top, so each epoch page-faults its batch-sized buffers
    afresh: at 4,096 Cartpole envs rl_games spent ~20 % of its CPU time in the kernel on page faults
    (benchmarks/RESULTS.md). A fixed 32 MiB mmap threshold and a 1 GiB trim threshold keep those blocks
    in the heap. The process keeps its peak heap instead of shrinking after it. Disable with
    POPTRAIN_MALLOC_TUNING=0. Returns whether the settings were applied.
    """
    if os.environ.get("POPTRAIN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc tuning applied: %s", applied)
    return applied
