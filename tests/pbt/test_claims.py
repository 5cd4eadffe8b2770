"""Member claims: exactly one of many processes starting the same policy_idx at once wins, also when they race
to take over a dead claim; a process taken over stops writing; pid 0 / -1 never count as alive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from meta_factory import make_meta

from poptrain.errors import WorkspaceError
from poptrain.pbt.workspace import Workspace

RACER = r"""
import json, os, sys, time
from poptrain.errors import WorkspaceError
from poptrain.pbt.workspace import MemberMeta, Workspace

LR = "train.params.config.learning_rate"
root, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
go, done = os.path.join(out, "go"), os.path.join(out, "done")
children = []
for i in range(n):  # imported once, then forked: 20 separate processes, each with its own pid
    pid = os.fork()
    if pid:
        children.append(pid)
        continue
    while not os.path.exists(go):  # the start line: every racer waits before anyone claims
        time.sleep(0.001)
    try:
        answer = {"token": Workspace(root).claim(0, 1)}
    except WorkspaceError as exc:
        answer = {"refused": str(exc)}
    with open(os.path.join(out, f"{i}.tmp"), "w") as f:
        json.dump(answer, f)
    os.rename(os.path.join(out, f"{i}.tmp"), os.path.join(out, f"{i}.json"))
    while not os.path.exists(done):  # stay alive: a winner that exited would leave a dead claim behind
        time.sleep(0.01)
    os._exit(0)
print("ready", flush=True)
for pid in children:
    os.waitpid(pid, 0)
"""


def race(root: Path, tmp_path: Path, n: int = 20) -> list[dict]:
    out = tmp_path / "race"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", RACER, str(root), str(out), str(n)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
        (out / "go").touch()
        while len(list(out.glob("*.json"))) < n:  # polled; the pytest timeout ends a hang
            assert proc.poll() is None
            time.sleep(0.01)
        return [json.loads((out / f"{i}.json").read_text()) for i in range(n)]
    finally:
        (out / "done").touch()
        proc.wait(timeout=120)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("before", ["none", "dead", "garbled", "released"])
def test_twenty_processes_claiming_one_member_at_once_exactly_one_wins(tmp_path, before):
    root = tmp_path / "ws"
    ws = Workspace(root)
    if before != "none":  # a claim the racers all judge free: they race for the takeover
        token = ws.claim(0, 1)
        path = next(ws.member_dir(0).glob("claim.*.json"))
        if before == "dead":
            path.write_text(
                json.dumps({**json.loads(path.read_text()), "pid": 2**22 + 17})
            )  # no such process
        elif before == "garbled":
            path.write_bytes(b"\x00\xff{garbage")
        else:
            ws.release_claim(0, token)
    answers = race(root, tmp_path)
    winners = [a["token"] for a in answers if "token" in a]
    assert len(winners) == 1, answers
    assert all("duplicate member" in a["refused"] for a in answers if "refused" in a)
    assert ws.current_claim(0)["token"] == winners[0]
    ws.check_claim(0, winners[0])


def test_a_process_taken_over_stops_writing(tmp_path):
    ws = Workspace(tmp_path, stale_after_s=60)
    token = ws.claim(0, 2)
    ws.write_checkpoint(make_meta(0, 1, num_policies=2), {"w": torch.zeros(1)}, claim_token=token)
    # another node judged this process stale and took the member over (a newer claim generation)
    gen = max(int(p.name.split(".")[1]) for p in ws.member_dir(0).glob("claim.*.json"))
    other = {"pid": 7, "host": "node-b", "time": time.time(), "token": "theirs", "job": ""}
    (ws.member_dir(0) / f"claim.{gen + 1:06d}.json").write_text(json.dumps(other))
    with pytest.raises(WorkspaceError, match="no longer holds its claim.*node-b"):
        ws.write_checkpoint(make_meta(0, 2, num_policies=2), {"w": torch.zeros(1)}, claim_token=token)
    assert not (ws.member_dir(0) / "000002.yaml").exists() and not (ws.member_dir(0) / "000002.pth").exists()
    ws.release_claim(0, token)  # not ours any more: the new holder keeps it
    assert ws.current_claim(0)["token"] == "theirs"


@pytest.mark.parametrize("pid", [0, -1])
def test_a_claim_with_pid_zero_or_negative_is_not_alive(tmp_path, pid):
    ws = Workspace(tmp_path)
    d = ws.member_dir(0)
    d.mkdir(parents=True)
    claim = {"pid": pid, "host": socket.gethostname(), "time": time.time(), "token": "x", "job": ""}
    (d / "claim.000000.json").write_text(json.dumps(claim))
    token = ws.claim(0, 1)  # os.kill(0, 0) / os.kill(-1, 0) succeed: they used to read as "alive" forever
    assert ws.current_claim(0)["token"] == token and ws.current_claim(0)["pid"] == os.getpid()
