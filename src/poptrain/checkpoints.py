"""Reading and writing checkpoints safely.

- ``atomic_torch_save`` writes to a temp file in the same folder and ``os.replace``s it, so a reader
  never sees a half-written file and a crash never destroys the previous version.
- ``load_checkpoint_file`` loads with ``weights_only=True`` (allowing the numpy scalar types that
  rl_games puts in its checkpoints) and turns every failure into one ConfigError naming the file.
- ``check_model_compat`` compares a checkpoint's network with a model and names the shapes that differ.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from poptrain.errors import ConfigError


def _numpy_safe_globals() -> list[Any]:
    """The numpy types rl_games checkpoints contain (numpy scalars for rewards), allowed weights-only."""
    names = ["dtype", "float32", "float64", "int64", "bool_"]
    safe: list[Any] = [getattr(np, n) for n in names]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        safe += [getattr(dtypes, n) for n in ("Float32DType", "Float64DType", "Int64DType") if hasattr(dtypes, n)]
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    scalar = getattr(getattr(core, "multiarray", None), "scalar", None)
    if scalar is not None:
        safe.append(scalar)
    return safe


_NUMPY_SAFE = _numpy_safe_globals()


#: Fault-injection hooks for benchmarks/chaos.py and its CI test (unset in normal runs; one environ lookup per
#: write): while the file named by POPTRAIN_CHAOS_ENOSPC_FILE exists, every atomic write fails with ENOSPC (a full
#: disk where no small tmpfs can be mounted); POPTRAIN_CHAOS_WRITE_DELAY_S seconds pass between writing a temp file
#: and renaming it, so a chaos driver can SIGKILL a writer mid-write.
CHAOS_ENOSPC_ENV = "POPTRAIN_CHAOS_ENOSPC_FILE"
CHAOS_WRITE_DELAY_ENV = "POPTRAIN_CHAOS_WRITE_DELAY_S"


def chaos_enospc() -> None:
    """Raise OSError(ENOSPC) while the chaos 'disk full' file exists (see CHAOS_ENOSPC_ENV)."""
    flag = os.environ.get(CHAOS_ENOSPC_ENV)
    if flag and os.path.exists(flag):
        raise OSError(errno.ENOSPC, "No space left on device (injected by the chaos suite)")


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], object],
    *,
    exclusive: bool = False,
    durable: bool = True,
) -> Path:
    """Write a file others may read at any moment: ``write(f)`` fills a temp file in the same folder, which is
    fsync'ed and then renamed over ``path`` (``exclusive``: hard-linked instead, FileExistsError when ``path``
    exists). Readers see the old file or the whole new one; on any failure the temp file is removed and the
    OSError propagates (callers name their own error). ``durable=False`` skips the fsync: still atomic for
    readers, but a power loss may keep the old file (for display-only files rewritten often)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            chaos_enospc()
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        delay = os.environ.get(CHAOS_WRITE_DELAY_ENV)
        if delay:
            time.sleep(float(delay))
        if not exclusive:
            os.replace(tmp, path)
            return path
        try:
            os.link(tmp, path)  # fails with FileExistsError when another process created it first
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if path.exists():  # no hard links on this file system: best-effort exclusivity
                raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
            os.replace(tmp, path)
            return path
        os.unlink(tmp)
        return path
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(state: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save ``state`` to ``path`` atomically (streamed into the temp file of ``atomic_write``)."""
    return atomic_write(path, lambda f: torch.save(state, f))


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
