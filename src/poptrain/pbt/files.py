"""Workspace file I/O: atomic writes that raise WorkspaceError, reads that never follow a symbolic link.

Every file another process reads is written to a temp file in the same folder, flushed, fsync'ed and
``os.replace``d (``poptrain.checkpoints.atomic_write``); an OSError (full disk, quota) removes the temp file and
raises WorkspaceError naming the path, so no half-written file is ever visible under its real name.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from poptrain.checkpoints import atomic_write
from poptrain.errors import WorkspaceError
from poptrain.pbt.layout import is_temp_name
from poptrain.pbt.meta import plain_state

log = logging.getLogger(__name__)

SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(data: Any) -> bytes:
    return yaml.dump(
        data, Dumper=_SafeDumper, sort_keys=True, default_flow_style=False, allow_unicode=True
    ).encode()


# ----------------------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------------------
def write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """``checkpoints.atomic_write`` of ``data``; an OSError (other than the exclusive FileExistsError) becomes a
    WorkspaceError naming the path. The temp file never stays."""
    try:
        atomic_write(path, lambda f: f.write(data), exclusive=exclusive)
    except FileExistsError:
        raise
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise WorkspaceError(
            f"cannot write {str(path)!r}: {reason} (errno {exc.errno}); nothing was written"
        ) from exc


def torch_bytes(state: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(plain_state(state), buf)
    return buf.getvalue()


def no_link(d: Path) -> Path:
    """``d`` unless it is a symbolic link: a member folder or best/ replaced by a link (anyone can write the
    workspace) would make every write land wherever it points. WorkspaceError naming it."""
    if d.is_symlink():
        raise WorkspaceError(
            f"{str(d)!r} is a symbolic link; refusing to write through it (a link in the shared workspace can point "
            "anywhere): remove it, or use a fresh pbt.workspace"
        )
    return d


def read_no_link(path: Path) -> bytes:
    """The file's bytes; OSError (ELOOP) when it is a symbolic link, which is never followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def remove_temp_files(d: Path, owner: str) -> list[str]:
    """Delete every ``.*.tmp`` in ``d`` (the caller knows no writer is active there); returns the names removed."""
    try:
        names = [n for n in os.listdir(d) if is_temp_name(n)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        try:
            (d / name).unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("PBT workspace: cannot remove leftover temp file %s: %s", d / name, exc)
    if removed:
        log.info("PBT workspace: removed %d leftover temp file(s) of %s", len(removed), owner)
    return removed
