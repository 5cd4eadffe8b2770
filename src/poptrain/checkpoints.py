"""Reading and writing checkpoints safely.

- ``atomic_torch_save`` writes to a temp file in the same folder and ``os.replace``s it, so a reader
  never sees a half-written file and a crash never destroys the previous version.
- ``load_checkpoint_file`` loads with ``weights_only=True`` (allowing the numpy scalar types that
  rl_games puts in its checkpoints) and turns every failure into one ConfigError naming the file.
- ``check_model_compat`` compares a checkpoint's network with a model and names the shapes that differ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poptrain.atomic import CHAOS_ENOSPC_ENV, CHAOS_WRITE_DELAY_ENV, atomic_write, chaos_enospc
from poptrain.errors import ConfigError

#: re-exported: checkpoint writers and the workspace import the one atomic_write from here too
__all__ = [
    "CHAOS_ENOSPC_ENV",
    "CHAOS_WRITE_DELAY_ENV",
    "atomic_torch_save",
    "atomic_write",
    "chaos_enospc",
    "check_model_compat",
    "load_checkpoint_file",
]


def _numpy_safe_globals() -> list[Any]:
    """The numpy types rl_games checkpoints contain (numpy scalars for rewards), allowed weights-only."""
    names = ["dtype", "float32", "float64", "int64", "bool_"]
    safe: list[Any] = [getattr(np, n) for n in names]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, n) for n in ("Float32DType", "Float64DType", "Int64DType") if hasattr(dtypes, n)
        ]
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    scalar = getattr(getattr(core, "multiarray", None), "scalar", None)
    if scalar is not None:
        safe.append(scalar)
    return safe


_NUMPY_SAFE = _numpy_safe_globals()


def atomic_torch_save(state: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save ``state`` to ``path`` atomically (streamed into the temp file of ``atomic_write``)."""
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint_file(path: str | os.PathLike[str], map_location: str | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict weights-only; raise ConfigError naming the file when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"checkpoint {str(path)!r} does not exist (expected a .pth file written by training)"
        )
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE):
            state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling/format failure means "not a checkpoint"
        raise ConfigError(
            f"checkpoint {str(path)!r} is not a readable poptrain/rl_games checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"checkpoint {str(path)!r} has no 'model' weights (found {keys})")
    return state


def check_model_compat(state: dict[str, Any], model: torch.nn.Module, path: str = "") -> None:
    """Raise ConfigError listing every parameter whose shape differs between checkpoint and model."""
    ckpt = {k.replace("_orig_mod.", ""): v for k, v in state["model"].items()}
    own = model.state_dict()
    problems = []
    for key, tensor in own.items():
        if key not in ckpt:
            problems.append(f"{key}: missing from checkpoint (model has {tuple(tensor.shape)})")
        elif tuple(ckpt[key].shape) != tuple(tensor.shape):
            problems.append(f"{key}: checkpoint {tuple(ckpt[key].shape)} vs model {tuple(tensor.shape)}")
    extra = [k for k in ckpt if k not in own]
    problems += [f"{k}: in checkpoint but not in model" for k in extra]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; ... {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ConfigError(f"checkpoint {path!r} does not match this task's network: {shown}")
