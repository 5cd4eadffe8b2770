"""Reading and writing checkpoints safely.

- ``atomic_torch_save`` writes to a temp file in the same folder and ``os.replace``s it, so a reader
  never sees a half-written file and a crash never destroys the previous version.
- ``load_checkpoint_file`` loads with ``weights_only=True`` (allowing the numpy scalar types that
  rl_games puts in its checkpoints) and turns every failure into one ConfigError naming the file.
- ``check_model_compat`` compares a checkpoint's network with a model and names the shapes that differ.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poptrain.errors import ConfigError

_NUMPY_SAFE: list[Any] = [np.dtype, np.float32, np.float64, np.int64, np.bool_]
try:  # numpy >= 1.25 / 2.x
    _NUMPY_SAFE += [np.dtypes.Float32DType, np.dtypes.Float64DType, np.dtypes.Int64DType]  # type: ignore[attr-defined]
    _NUMPY_SAFE.append(np._core.multiarray.scalar)  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - older numpy
    _NUMPY_SAFE.append(np.core.multiarray.scalar)  # type: ignore[attr-defined]


def atomic_torch_save(state: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save ``state`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint_file(path: str | os.PathLike[str], map_location: str | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict weights-only; raise ConfigError naming the file when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist (expected a .pth file written by training)")
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
