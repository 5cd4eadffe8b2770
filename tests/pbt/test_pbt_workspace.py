"""poptrain.pbt.workspace: atomic writes, tolerant reads (fuzzed), staleness, claims, lineage, cleanup."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch
import yaml

from poptrain.errors import WorkspaceError
from poptrain.pbt import workspace as wsmod
from poptrain.pbt.workspace import CHECKPOINT_DIGEST, MemberMeta, Workspace, plain_state

LR = "train.params.config.learning_rate"


def _state(scale: float = 1.0) -> dict:
    """Something shaped like rl_games get_full_state_weights(), numpy scalar included."""
    return {
        "model": {"a2c_network.mu.weight": torch.full((2, 3), scale), "a2c_network.mu.bias": torch.zeros(2)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0, 1]}]},
        "epoch": 7,
        "frame": 12345,
        "last_mean_rewards": np.float32(42.5),
        "running_mean_std": {"running_mean": np.zeros(4, dtype=np.float64), "count": np.float64(3.0)},
        "env_state": None,
    }


# ---------------------------------------------------------------------------------------------------------
# Round trip and format
# ---------------------------------------------------------------------------------------------------------
def test_write_then_read_round_trip_and_weights_only_load(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    meta = meta_factory(
        member=2, iteration=5, objective=torch.tensor(17.25), parent={"member": 1, "iteration": 4}
    )
    yml = ws.write_checkpoint(meta, _state(2.0))
    assert yml == tmp_path / "002" / "000005.yaml"
    assert (tmp_path / "002" / "000005.pth").is_file()
    assert type(meta.objective) is float and meta.objective == 17.25

    got = ws.latest(2)
    assert _bare(got) == meta and got.extra["checkpoint_sha256"]  # the checkpoint's digest is added
    assert _bare(ws.member_history(2)) == [meta]
    assert ws.members() == [2]

    # plain torch.load(weights_only=True) works: numpy scalars/arrays were converted on write
    state = torch.load(tmp_path / "002" / "000005.pth", weights_only=True)
    assert state["last_mean_rewards"] == 42.5 and type(state["last_mean_rewards"]) is float
    assert isinstance(state["running_mean_std"]["running_mean"], torch.Tensor)
    assert torch.equal(state["model"]["a2c_network.mu.weight"], torch.full((2, 3), 2.0))
    assert ws.load_state(got)["frame"] == 12345


def test_metadata_file_is_yaml_with_verifiable_sha256(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    ws.write_checkpoint(meta_factory(), _state())
    data = yaml.safe_load((tmp_path / "000" / "000001.yaml").read_text())
    assert set(data) == {f for f in MemberMeta.__dataclass_fields__} | {"sha256"}
    assert len(data["sha256"]) == 64
    assert _bare(MemberMeta.from_dict(data)) == meta_factory(time=data["time"])
    data["objective"] = data["objective"] + 1.0
    with pytest.raises(ValueError, match="sha256"):
        MemberMeta.from_dict(data)


def test_nan_objective_and_numpy_values_round_trip(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    meta = meta_factory(
        objective=np.float32("nan"), params={LR: np.float64(1e-5), "k.mini_epochs": np.int64(4)}
    )
    ws.write_checkpoint(meta, _state())
    got = ws.latest(0)
    assert got is not None and math.isnan(got.objective)
    assert got.params == {LR: 1e-5, "k.mini_epochs": 4} and type(got.params["k.mini_epochs"]) is int


def test_from_dict_is_strict(meta_factory):
    good = meta_factory().to_dict()
    assert MemberMeta.from_dict(good).to_dict() == good
    for broken in (
        {k: v for k, v in good.items() if k != "frames"},  # missing key
        {**good, "surprise": 1},  # unknown key
        {**good, "frames": "12"},  # wrong type (sha of the original would not match either)
        {**good, "sha256": "0" * 64},
        [good],
    ):
        with pytest.raises(ValueError):
            MemberMeta.from_dict(broken)


def test_member_meta_rejects_bad_values(meta_factory):
    with pytest.raises(ValueError, match="shape"):
        meta_factory(objective=torch.ones(3))
    with pytest.raises(ValueError, match="checkpoint"):
        meta_factory(checkpoint="../000001.pth")
    with pytest.raises(ValueError, match="member"):
        meta_factory(member=-1)


def test_plain_state_names_the_unloadable_key():
    with pytest.raises(WorkspaceError, match=r"state\.extra\.thing.*object"):
        plain_state({"extra": {"thing": object()}})


# ---------------------------------------------------------------------------------------------------------
# Tolerant readers
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def fast_tmp(tmp_path):
    """A temp folder in RAM when /dev/shm exists (thousands of rewrites are slow on a busy ext4 with discard)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="poptrain-fuzz-") as d:
            yield d
    else:
        yield tmp_path


def test_fuzz_truncated_or_garbled_metadata_never_crashes_or_lies(fast_tmp, meta_factory, caplog):
    """Every truncation and several garblings at every byte: the reader returns the original or nothing."""
    ws = Workspace(fast_tmp)
    original = meta_factory(member=0, iteration=3, objective=0.75, parent={"member": 1, "iteration": 2})
    yml = ws.write_checkpoint(original, {"model": {}})
    good = yml.read_bytes()
    assert 300 < len(good) < 1500
    caplog.set_level(logging.CRITICAL, logger="poptrain.pbt.workspace")

    variants: list[bytes] = [good[:cut] for cut in range(len(good))]
    for i in range(len(good)):
        for repl in (b"0", b"9", b" ", b"\n", b":", b"\xff", bytes([good[i] ^ 0x01])):
            if repl != good[i : i + 1]:
                variants.append(good[:i] + repl + good[i + 1 :])
        variants.append(good[:i] + good[i + 1 :])  # deleted byte

    skipped = 0
    fd = os.open(
        yml, os.O_RDWR
    )  # rewrite in place through one descriptor (open() is slow on some file systems)
    try:
        for data in variants:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            got = ws.latest(0)
            assert got is None or _bare(got) == original, f"reader returned a wrong value for {data!r}"
            skipped += got is None
            assert _bare(ws.read_population(include_stale=True).get(0)) in (None, original)
    finally:
        os.close(fd)
    assert skipped > 0.9 * len(variants)  # the checksum catches (almost) everything


def test_corrupt_file_is_skipped_with_one_warning_and_older_valid_file_used(tmp_path, meta_factory, caplog):
    ws = Workspace(tmp_path)
    older = meta_factory(iteration=1)
    ws.write_checkpoint(older, _state())
    ws.write_checkpoint(meta_factory(iteration=2), _state())
    bad = tmp_path / "000" / "000002.yaml"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated, as by a writer killed without atomic rename
    (tmp_path / "000" / "notes.txt").write_text("hello")  # stray file
    (tmp_path / "000" / ".000003.yaml.abc.tmp").write_text("half")  # a write in progress: silent
    (tmp_path / "junk").mkdir()  # not a member folder

    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.workspace"):
        for _ in range(3):
            assert _bare(ws.latest(0)) == older
            assert _bare(ws.read_population(include_stale=True)) == {0: older}
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "000002.yaml" in w]) == 1, warnings
    assert len([w for w in warnings if "notes.txt" in w]) == 1, warnings
    assert not [w for w in warnings if ".tmp" in w]
    assert ws.members() == [0]


def test_foreign_and_misplaced_metadata_are_skipped(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    d = tmp_path / "001"
    d.mkdir()
    (d / "000001.yaml").write_text("iteration: 1\ntrue_objective: 5.0\n")  # IsaacGymEnvs-style file
    # a valid file of member 1 iteration 1 copied under another member's / iteration's name
    good = meta_factory(member=1, iteration=1)
    ws.write_checkpoint(good, _state())
    os.replace(d / "000001.yaml", d / "000009.yaml")
    other = tmp_path / "002"
    other.mkdir()
    (other / "000001.yaml").write_bytes((d / "000009.yaml").read_bytes())
    assert ws.latest(1) is None
    assert ws.latest(2) is None
    assert ws.read_population(include_stale=True) == {}


def test_staleness(tmp_path, meta_factory):
    ws = Workspace(tmp_path, stale_after_s=100.0)
    now = 1_000_000.0
    fresh = meta_factory(member=0, time=now - 50)
    old = meta_factory(member=1, time=now - 150)
    ws.write_checkpoint(fresh, _state())
    ws.write_checkpoint(old, _state())
    assert not ws.is_stale(fresh, now) and ws.is_stale(old, now)
    assert _bare(ws.read_population(now=now)) == {0: fresh}
    assert _bare(ws.read_population(now=now, include_stale=True)) == {0: fresh, 1: old}
    assert ws.read_population(now=now + 200) == {}


# ---------------------------------------------------------------------------------------------------------
# Atomic writes and a full disk
# ---------------------------------------------------------------------------------------------------------
def _bare(value):
    """Metadata as the test built it: without the checkpoint digest write_checkpoint adds to ``extra``."""
    if isinstance(value, MemberMeta):
        extra = {k: v for k, v in value.extra.items() if k != CHECKPOINT_DIGEST}
        return dataclasses.replace(value, extra=extra)
    if isinstance(value, list):
        return [_bare(v) for v in value]
    if isinstance(value, dict):
        return {k: _bare(v) for k, v in value.items()}
    return value


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_raises_workspace_error_and_leaves_no_file(tmp_path, meta_factory, monkeypatch):
    ws = Workspace(tmp_path)
    first = meta_factory(iteration=1)
    ws.write_checkpoint(first, _state())
    monkeypatch.setattr(wsmod.os, "fsync", _enospc)
    with pytest.raises(WorkspaceError, match=r"000002\.pth.*disk full"):
        ws.write_checkpoint(meta_factory(iteration=2), _state())
    assert sorted(p.name for p in (tmp_path / "000").iterdir()) == ["000001.pth", "000001.yaml"]
    assert _bare(ws.latest(0)) == first


def test_full_disk_on_metadata_removes_the_orphan_checkpoint(tmp_path, meta_factory, monkeypatch):
    ws = Workspace(tmp_path)
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync_fails_second_time(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            _enospc()
        real_fsync(fd)

    monkeypatch.setattr(wsmod.os, "fsync", fsync_fails_second_time)
    with pytest.raises(WorkspaceError, match=r"000001\.yaml"):
        ws.write_checkpoint(meta_factory(iteration=1), _state())
    assert list((tmp_path / "000").iterdir()) == []
    assert ws.latest(0) is None


def test_export_best_writes_loadable_files_atomically(tmp_path, meta_factory, monkeypatch):
    ws = Workspace(tmp_path)
    meta = meta_factory(member=3, iteration=9)
    cfg = {"task": {"name": "Cartpole"}, "train": {"params": {"config": {"learning_rate": 3e-4}}}, "seed": 1}
    best = ws.export_best(meta, _state(3.0), cfg)
    assert best == tmp_path / "best"
    assert sorted(p.name for p in best.iterdir()) == ["checkpoint.pth", "config.yaml", "meta.yaml"]
    assert torch.load(best / "checkpoint.pth", weights_only=True)["frame"] == 12345
    assert yaml.safe_load((best / "config.yaml").read_text()) == cfg
    assert MemberMeta.from_dict(yaml.safe_load((best / "meta.yaml").read_text())) == meta
    monkeypatch.setattr(wsmod.os, "fsync", _enospc)
    with pytest.raises(WorkspaceError, match="best"):
        ws.export_best(meta_factory(member=1), _state(), cfg)
    assert sorted(p.name for p in best.iterdir()) == ["checkpoint.pth", "config.yaml", "meta.yaml"]
    assert MemberMeta.from_dict(yaml.safe_load((best / "meta.yaml").read_text())) == meta


def test_load_state_errors_name_the_file(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    meta = meta_factory()
    with pytest.raises(WorkspaceError, match="000001.pth.*gone"):
        ws.load_state(meta)
    ws.write_checkpoint(meta, _state())
    (tmp_path / "000" / "000001.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WorkspaceError, match="000001.pth.*weights_only"):
        ws.load_state(meta)


# ---------------------------------------------------------------------------------------------------------
# Lineage
# ---------------------------------------------------------------------------------------------------------
def test_lineage_append_and_read(tmp_path, caplog):
    ws = Workspace(tmp_path)
    rec = ws.append_lineage(
        "exploit",
        2,
        source=0,
        source_iteration=4,
        iteration=5,
        frames=np.int64(100),
        old_params={LR: 1e-3},
        new_params={LR: 2e-3},
        changed=[LR],
        mode="hot_swap",
    )
    assert rec.frames == 100 and rec.event == "exploit" and isinstance(rec.time, float)
    ws.append_lineage("restart", 1, iteration=6)
    with open(ws.lineage_path, "ab") as f:
        f.write(b'{"event": "exploit", "mem\n')  # a torn line
    ws.append_lineage("mutate", 3, mode="restart")
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.workspace"):
        recs = ws.read_lineage()
        ws.read_lineage()
    assert [(r.event, r.member) for r in recs] == [("exploit", 2), ("restart", 1), ("mutate", 3)]
    assert recs[0] == rec
    # every standard field is written, even when the caller gave none of them (what the reader type-checks)
    line = json.loads(ws.lineage_path.read_text().splitlines()[1])
    assert {
        "event",
        "member",
        "source",
        "source_iteration",
        "iteration",
        "frames",
        "old_params",
        "mode",
    } <= set(line)
    assert recs[1].source is None and recs[1].old_params == {} and recs[1].extra == {}
    assert len([r for r in caplog.records if "line 3" in r.getMessage()]) == 1
    with pytest.raises(ValueError, match="event"):
        ws.append_lineage("Exploit now", 0)


def _append_many(root: str, member: int, n: int) -> None:
    ws = Workspace(root)
    for i in range(n):
        ws.append_lineage("mutate", member, iteration=i, new_params={"k": "x" * 300})


def test_concurrent_lineage_appends_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), m, 150)) for m in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    recs = Workspace(tmp_path).read_lineage()
    assert len(recs) == 600
    for m in range(4):
        assert [r.iteration for r in recs if r.member == m] == list(range(150))


# ---------------------------------------------------------------------------------------------------------
# Cleanup
# ---------------------------------------------------------------------------------------------------------
def test_cleanup_keeps_newest_and_referenced_checkpoints_and_all_metadata(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    for it in range(1, 9):
        ws.write_checkpoint(meta_factory(member=0, iteration=it), _state())
    ws.write_checkpoint(meta_factory(member=1, iteration=6, parent={"member": 0, "iteration": 3}), _state())
    ws.write_checkpoint(meta_factory(member=2, iteration=20), _state())
    # member 1 exploited 0@2 at its iteration 5 (recent for it); member 2 exploited 0@1 at its iteration 10 (old)
    ws.append_lineage("exploit", 1, source=0, source_iteration=2, iteration=5)
    ws.append_lineage("exploit", 2, source=0, source_iteration=1, iteration=10)
    ws.cleanup(0, keep_last=3)
    pths = sorted(int(p.stem) for p in (tmp_path / "000").glob("*.pth"))
    assert pths == [2, 3, 6, 7, 8]
    assert len(list((tmp_path / "000").glob("*.yaml"))) == 8
    assert len(ws.member_history(0)) == 8
    ws.cleanup(0, keep_last=1)  # references still protect 2 and 3
    assert sorted(int(p.stem) for p in (tmp_path / "000").glob("*.pth")) == [2, 3, 8]
    with pytest.raises(ValueError, match="keep_last"):
        ws.cleanup(0, keep_last=0)


def test_cleanup_removes_temp_files_of_killed_writers(tmp_path, meta_factory):
    ws = Workspace(tmp_path)
    ws.write_checkpoint(meta_factory(iteration=1), _state())
    old = tmp_path / "000" / ".000002.pth.abc.tmp"
    fresh = tmp_path / "000" / ".000003.pth.def.tmp"
    old.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    ws.cleanup(0)
    assert not old.exists() and fresh.exists()
    assert (tmp_path / "000" / "000001.pth").exists()


# ---------------------------------------------------------------------------------------------------------
# Population file and claims
# ---------------------------------------------------------------------------------------------------------
def test_ensure_population(tmp_path):
    ws = Workspace(tmp_path)
    ws.ensure_population(4)
    assert json.loads((tmp_path / "population.json").read_text())["num_policies"] == 4
    ws.ensure_population(4)
    with pytest.raises(WorkspaceError, match=r"num_policies=8.*num_policies=4"):
        Workspace(tmp_path).ensure_population(8)
    with pytest.raises(WorkspaceError, match="integer"):
        ws.ensure_population(0)
    (tmp_path / "population.json").write_text("<html>")
    with pytest.raises(WorkspaceError, match="not a poptrain population file"):
        ws.ensure_population(4)


def test_a_member_killed_while_creating_the_population_file_leaves_nothing_behind(tmp_path):
    """Killed between its temp file and the link (the chaos suite's write delay holds it there): the next member
    creates the file and removes the dead one's temp file."""
    code = f"from poptrain.pbt.workspace import Workspace; Workspace({str(tmp_path)!r}).ensure_population(4)"
    env = {**os.environ, "POPTRAIN_CHAOS_WRITE_DELAY_S": "600"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 300  # generous: only a hang ends here
        while not list(tmp_path.glob(".population.json.*.tmp")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "population.json").exists()
    Workspace(tmp_path).ensure_population(4)  # the next member creates it and removes the dead writer's temp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["population.json"]
    assert json.loads((tmp_path / "population.json").read_text())["num_policies"] == 4


def _write_claim(ws: Workspace, member: int, text: str | None = None, **claim) -> None:
    """A newer claim generation with ``claim`` (or raw ``text``) in it, as another process would leave it."""
    d = ws.member_dir(member)
    d.mkdir(parents=True, exist_ok=True)
    gens = [int(p.name.split(".")[1]) for p in d.glob("claim.*.json")]
    (d / f"claim.{max(gens, default=-1) + 1:06d}.json").write_text(
        json.dumps(claim) if text is None else text
    )


def _claim_files(ws: Workspace, member: int) -> list[str]:
    return sorted(p.name for p in ws.member_dir(member).glob("claim.*.json"))


def test_claim_range_and_own_reclaim(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(WorkspaceError, match=r"policy_idx=4.*0\.\.3"):
        ws.claim(4, 4)
    with pytest.raises(WorkspaceError, match="policy_idx=-1"):
        ws.claim(-1, 4)
    token = ws.claim(1, 4)
    claim = ws.current_claim(1)
    assert claim["token"] == token and claim["pid"] == os.getpid() and claim["host"] == socket.gethostname()
    token2 = ws.claim(1, 4)  # same pid (what os.execv keeps): ours, taken again
    assert token2 != token and _claim_files(ws, 1) == ["claim.000001.json"]  # older generations removed
    ws.release_claim(1, token)  # stale token: no effect
    assert ws.current_claim(1)["token"] == token2
    ws.release_claim(1, token2)
    assert ws.current_claim(1) is None and _claim_files(ws, 1) == ["claim.000002.json"]  # the counter stays
    assert ws.claim(1, 4)


def test_claim_refuses_duplicate_live_member_and_takes_over_dead_one(tmp_path):
    ws = Workspace(tmp_path)
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_claim(ws, 2, pid=live.pid, host=host, time=time.time(), token="x")
        with pytest.raises(WorkspaceError, match=rf"duplicate member: pbt.policy_idx=2.*{live.pid}"):
            ws.claim(2, 4)
    finally:
        live.kill()
        live.wait()
    token = ws.claim(2, 4)  # the process is gone: its claim is taken over
    assert ws.current_claim(2)["token"] == token


def test_claim_from_another_host_uses_staleness(tmp_path):
    ws = Workspace(tmp_path, stale_after_s=60)
    _write_claim(ws, 0, pid=1, host="elsewhere-node", time=time.time() - 5, token="x")
    with pytest.raises(WorkspaceError, match="elsewhere-node"):
        ws.claim(0, 2)
    _write_claim(ws, 0, pid=1, host="elsewhere-node", time=time.time() - 600, token="x")
    assert ws.claim(0, 2)
    _write_claim(ws, 1, text="{garbage")
    assert ws.claim(1, 2)


def test_resolve_root(tmp_path):
    assert Workspace.resolve_root("runs", "pbt_ws") == __import__("pathlib").Path("runs/pbt_ws")
    assert Workspace.resolve_root("runs", str(tmp_path / "abs")) == tmp_path / "abs"
    with pytest.raises(WorkspaceError, match="empty"):
        Workspace.resolve_root("runs", " ")


def test_a_requeued_slurm_job_takes_over_its_own_fresh_claim_from_another_node(tmp_path, monkeypatch):
    ws = Workspace(tmp_path, stale_after_s=600)
    fresh = {"pid": 1, "host": "node-a", "time": time.time() - 5, "token": "x", "job": "4242"}
    _write_claim(ws, 0, **fresh)
    monkeypatch.setenv("SLURM_JOB_ID", "777")  # another job: a live duplicate on node-a
    with pytest.raises(WorkspaceError, match="node-a"):
        ws.claim(0, 2)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # the same job, requeued onto this node
    token = ws.claim(0, 2)
    claim = ws.current_claim(0)
    assert claim["token"] == token and claim["job"] == "4242" and claim["host"] == socket.gethostname()
    ws.release_claim(0, token)
    assert ws.current_claim(0) is None


def test_a_checkpoint_with_flipped_tensor_bytes_is_refused(tmp_path, meta_factory):
    """torch.load accepts flipped tensor bytes silently; the digest in the metadata does not."""
    ws = Workspace(tmp_path)
    ws.write_checkpoint(meta_factory(), {"w": torch.arange(1000, dtype=torch.float32)})
    meta = ws.latest(0)
    assert torch.equal(ws.load_state(meta)["w"], torch.arange(1000, dtype=torch.float32))
    pth = tmp_path / "000" / "000001.pth"
    data = bytearray(pth.read_bytes())
    data[data.find(torch.tensor([500.0]).numpy().tobytes())] ^= 0xFF  # one weight's byte
    pth.write_bytes(bytes(data))
    assert torch.load(pth, weights_only=True)["w"][500] != 500.0  # what an unchecked reader would copy
    with pytest.raises(WorkspaceError, match="does not match the sha256 in its metadata"):
        ws.load_state(meta)
