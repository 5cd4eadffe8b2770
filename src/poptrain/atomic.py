"""The one atomic file write: temp file in the same folder, fsync, rename (``atomic_write``).

Torch-free on purpose: the launcher and its Ray workers import it, and ``poptrain.checkpoints`` (which imports
torch, seconds and ~300 MB per process) re-exports it for checkpoint writers.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    mode: int | None = None,
) -> Path:
    """Write a file others may read at any moment: ``write(f)`` fills a temp file in the same folder, which is
    fsync'ed and then renamed over ``path`` (``exclusive``: hard-linked instead, FileExistsError when ``path``
    exists). Readers see the old file or the whole new one; on any failure the temp file is removed and the
    OSError propagates (callers name their own error). ``durable=False`` skips the fsync: still atomic for
    readers, but a power loss may keep the old file (for display-only files rewritten often). ``mode``: the file's
    permission bits (default: mkstemp's 0600, owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():  # no temp file for a write that cannot win (a kill would leave it behind)
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            chaos_enospc()
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
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
        except FileNotFoundError:
            # the winner's clean-up (Workspace.ensure_population) removed this losing temp file: same outcome
            if path.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
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
