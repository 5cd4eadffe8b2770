"""Which MJX implementation the Playground adapter asks for (pure; no playground extra needed)."""

from __future__ import annotations

import pytest

from poptrain.tasks.playground import resolve_impl


@pytest.mark.parametrize(
    ("impl", "device", "default", "have_warp", "expected"),
    [
        ("auto", "cpu", "warp", True, "jax"),  # warp ran ~8x slower on CPU
        ("auto", "cpu", "jax", False, "jax"),
        ("auto", "cuda", "warp", True, ""),  # the task's own default on GPU
        ("auto", "cuda", "warp", False, "jax"),  # ... unless that is warp and warp-lang is missing
        ("auto", "cuda", "jax", False, ""),
        ("warp", "cuda", "warp", False, "warp"),  # asked for explicitly: as asked
        ("jax", "cuda", "warp", True, "jax"),
    ],
)
def test_auto_picks_jax_on_cpu_and_where_warp_is_missing(impl, device, default, have_warp, expected):
    assert resolve_impl(impl, device, default, have_warp) == expected
