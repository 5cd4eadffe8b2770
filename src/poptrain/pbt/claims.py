"""Member claims: which process runs member ``idx`` (``<root>/<idx:03d>/claim.<gen>.json``, newest generation holds).

A claim stops two processes from training the same member (a duplicate ``pbt.policy_idx``, a launcher that
started a member twice, a SLURM requeue while the old run still writes). See ``Claims.claim`` for why it is
race-free on one host and on NFS.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time as _time
import uuid
from collections.abc import Callable
from pathlib import Path

from poptrain.errors import WorkspaceError
from poptrain.pbt.files import no_link, write_bytes
from poptrain.pbt.layout import CLAIM_RE, Layout
from poptrain.pbt.meta import MemberMeta
from poptrain.untrusted import shown

log = logging.getLogger("poptrain.pbt.workspace")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0 or -1, 0) signals a process group / every process: "alive" forever
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Claims:
    """The claims of one workspace. ``latest(member)`` gives the member's newest metadata (a claim from another
    host counts as live while it or that metadata is newer than ``stale_after_s``); ``warn_once(path, why)``
    reports an unreadable claim file once."""

    def __init__(
        self,
        layout: Layout,
        stale_after_s: float,
        latest: Callable[[int], MemberMeta | None],
        warn_once: Callable[[Path, str], None],
    ) -> None:
        self.layout = layout
        self.stale_after_s = stale_after_s
        self.latest = latest
        self._warn_once = warn_once

    def member_dir(self, member: int) -> Path:
        return self.layout.member_dir(member)

    def _claims(self, member: int) -> list[tuple[int, Path]]:
        """(generation, path) of the member's claim files, newest first."""
        d = self.member_dir(member)
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(((int(m.group(1)), d / n) for n in names if (m := CLAIM_RE.match(n))), reverse=True)

    def _read_claim(self, path: Path) -> dict | None:
        """A claim's content; None (one warning) when it is not a claim (corrupt, garbled, foreign, a link)."""
        try:
            if path.is_symlink():
                raise OSError("a symbolic link")
            claim = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._warn_once(path, f"corrupt claim ({type(exc).__name__}); it counts as free")
            return None
        if not (isinstance(claim, dict) and {"pid", "host", "time", "token"} <= set(claim)):
            self._warn_once(path, "foreign claim file; it counts as free")
            return None
        return claim

    def current_claim(self, member: int) -> dict | None:
        """The member's newest claim (None: never claimed, released, or the newest one is unreadable)."""
        claims = self._claims(member)
        if not claims:
            return None
        claim = self._read_claim(claims[0][1])
        return None if claim is None or claim.get("released") else claim

    def claim(self, member: int, num_policies: int) -> str:
        """Record that this process runs ``member``; return the claim token.

        Refused (WorkspaceError) when ``member`` is outside [0, num_policies) or another live process holds it:
        same host and its pid is alive (and not ours: os.execv keeps the pid), or another host and the claim or
        the member's newest metadata is newer than ``stale_after_s``. Dead or stale claims are taken over.

        Race-free on one host and on NFS: claims are generations ``claim.<gen>.json`` and the newest one holds.
        A process that judged generation g free (none, dead, stale, released, unreadable) creates g+1 by an
        exclusive hard link of its fsync'ed temp file (``atomic_write(exclusive=True)``; link() is atomic on NFS
        too), which exactly one of any number of concurrent processes gets; the others refuse. A claim is never
        overwritten, so a process that read an old state cannot replace a newer claim. Holders re-check their
        token before each write (``check_claim``)."""
        if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < num_policies:
            raise WorkspaceError(
                f"pbt.policy_idx={member!r} is out of range: valid values are 0..{num_policies - 1} "
                f"(num_policies={num_policies})"
            )
        no_link(self.member_dir(member))
        host, pid, now = socket.gethostname(), os.getpid(), _time.time()
        job = os.environ.get("SLURM_JOB_ID", "")
        claims = self._claims(member)
        gen = claims[0][0] if claims else -1
        old = self._read_claim(claims[0][1]) if claims else None
        if (
            old is not None
            and not old.get("released")
            and not (old.get("host") == host and old.get("pid") == pid)
        ):
            if job and old.get("job") == job:
                # the same scheduler job started again (SLURM requeue, possibly on another node): the scheduler
                # ended the previous run of this job, so its claim is ours to take over
                live, how = False, f"SLURM job {job} was requeued"
            elif old.get("host") == host:
                live = type(old.get("pid")) is int and _pid_alive(old["pid"])
                how = f"process {old.get('pid')} on this host is alive"
            else:
                meta = self.latest(member)
                t = old.get("time")
                claimed_at = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0
                last = max(claimed_at, meta.time if meta else 0.0)
                live = now - last <= self.stale_after_s
                how = (
                    f"host {shown(old.get('host'))!r} was active {now - last:.0f} s ago "
                    f"(< stale_after_s={self.stale_after_s:g})"
                )
            if live:
                raise WorkspaceError(
                    f"duplicate member: pbt.policy_idx={member} is already running ({how}); give every member a "
                    f"unique policy_idx in 0..{num_policies - 1}, or remove {str(claims[0][1])!r} if that "
                    "process is gone"
                )
            log.warning("PBT workspace: taking over stale claim of member %d (%s)", member, shown(old))
        token = uuid.uuid4().hex
        data = json.dumps(
            {"pid": pid, "host": host, "time": now, "token": token, "job": job, "generation": gen + 1},
            sort_keys=True,
        ).encode()
        try:
            write_bytes(self._claim_path(member, gen + 1), data, exclusive=True)
        except FileExistsError:
            raise WorkspaceError(
                f"duplicate member: another process claimed pbt.policy_idx={member} at the same moment"
            ) from None
        self._drop_old_claims(member, gen + 1)
        return token

    def _claim_path(self, member: int, gen: int) -> Path:
        return self.layout.claim_path(member, gen)

    def _drop_old_claims(self, member: int, newest: int) -> None:
        """Remove generations below ``newest`` (never the newest: the counter must only grow)."""
        for gen, path in self._claims(member):
            if gen < newest:
                try:
                    path.unlink()
                except OSError:
                    pass  # another process removed it already

    def check_claim(self, member: int, token: str) -> None:
        """WorkspaceError unless ``token`` still holds the member's newest claim (called before every write:
        a process that was judged stale and taken over must stop writing as that member)."""
        claims = self._claims(member)
        claim = self._read_claim(claims[0][1]) if claims else None
        if claim is None or claim.get("token") != token or claim.get("released"):
            holder = "nobody" if claim is None else shown({k: claim.get(k) for k in ("host", "pid", "job")})
            raise WorkspaceError(
                f"member {member}: this process no longer holds its claim (now held by {holder}); another "
                "process took the member over, so this one stops writing to the workspace"
            )

    def release_claim(self, member: int, token: str) -> None:
        """Release the member's claim if it is still ours (normal end of training): a newer generation marked
        ``released`` (the generation counter never goes back, see ``claim``)."""
        claims = self._claims(member)
        if not claims:
            return
        gen, path = claims[0]
        claim = self._read_claim(path)
        if claim is None or claim.get("token") != token:
            return
        data = json.dumps({**claim, "released": True, "time": _time.time()}, sort_keys=True).encode()
        try:
            write_bytes(self._claim_path(member, gen + 1), data, exclusive=True)
        except FileExistsError:
            return  # taken over at this moment: not ours to release any more
        self._drop_old_claims(member, gen + 1)
