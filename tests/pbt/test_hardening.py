"""Member start-up and export on a hostile or broken workspace (issue 10, point 3): secrets stay out of best/,
symbolic links are never written through, a file system without flock is not a crash, the command line is never
silently lost, a resume is honest about its checkpoint, and a resuming member removes its own leftover temp files."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from meta_factory import LR, make_meta
from observer_harness import population, run_rounds
from omegaconf import OmegaConf

from poptrain import train
from poptrain.errors import ConfigError, WorkspaceError
from poptrain.pbt import observer
from poptrain.pbt.workspace import Workspace

SECRET = "s3cr3t-api-key-value"


def member_cfg(ws: Path, idx: int = 1, n: int = 2, *extra: str):
    overrides = ["task=Cartpole", "pbt=pbt_default", f"pbt.workspace={ws}", f"pbt.policy_idx={idx}",
                 f"pbt.num_policies={n}", *extra]  # fmt: skip
    with initialize_config_dir(config_dir=str(train.CFG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


# ---- secrets --------------------------------------------------------------------------------------------
def test_exported_config_never_holds_values_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POPTRAIN_TEST_SECRET", SECRET)
    cfg = member_cfg(tmp_path, 0, 2, "experiment=${oc.env:POPTRAIN_TEST_SECRET}")
    cfg.wandb_name = "run-${experiment}"
    config = observer.exportable_config(cfg)
    text = yaml.safe_dump(config)
    assert SECRET not in text
    assert (
        config["experiment"] == "${oc.env:POPTRAIN_TEST_SECRET}"
        and config["wandb_name"] == "run-${experiment}"
    )
    assert config["task"]["name"] == "Cartpole"  # everything else is resolved as before
    # an experiment name the member already resolved (it is in its metadata) is redacted in place
    cfg.experiment = f"best-{SECRET}"
    cfg.wandb_group = "${oc.env:POPTRAIN_TEST_SECRET}"
    assert SECRET not in yaml.safe_dump(observer.exportable_config(cfg))


# ---- symbolic links -------------------------------------------------------------------------------------
def test_member_folder_and_best_as_symbolic_links_are_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    (ws.root / "000").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="symbolic link"):
        ws.write_checkpoint(make_meta(0, 1), {"w": torch.zeros(1)})
    with pytest.raises(WorkspaceError, match="symbolic link"):
        ws.claim(0, 4)
    ws.best_dir.symlink_to(outside)
    with pytest.raises(WorkspaceError, match="symbolic link"):
        ws.export_best(make_meta(1, 1), {"w": torch.zeros(1)}, {"a": 1})
    assert list(outside.iterdir()) == []
    assert ws.members() == []  # a linked member folder is not a member


def test_a_symlinked_metadata_file_is_not_followed(tmp_path, caplog):
    ws = Workspace(tmp_path)
    ws.write_checkpoint(make_meta(0, 1), {"w": torch.zeros(1)})
    elsewhere = tmp_path / "elsewhere.yaml"
    os.rename(ws.member_dir(0) / "000001.yaml", elsewhere)
    (ws.member_dir(0) / "000001.yaml").symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.workspace"):
        assert ws.latest(0) is None
    assert "unreadable" in caplog.text


# ---- flock ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("err", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_export_without_flock_warns_and_exports(tmp_path, monkeypatch, caplog, err):
    def no_flock(fd, op):
        raise OSError(err, os.strerror(err))

    clock, members = population(tmp_path)
    run_rounds(clock, members, 2)  # every member has written its metadata and checkpoint (round 2)
    monkeypatch.setattr(fcntl, "flock", no_flock)  # Lustre without -o flock answers like this
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.observer"):
        members[1].export_best()
    assert "flock is not available" in caplog.text
    assert yaml.safe_load((tmp_path / "pbt_workspace" / "best" / "meta.yaml").read_text())["member"] == 0


def test_other_flock_errors_are_not_hidden(tmp_path, monkeypatch):
    def broken(fd, op):
        raise OSError(errno.EIO, "I/O error")

    clock, members = population(tmp_path)
    run_rounds(clock, members, 2)
    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError, match="I/O error"):
        members[0].export_best()
    assert not (tmp_path / "pbt_workspace" / "best" / "meta.yaml").exists()


# ---- command line -----------------------------------------------------------------------------------------
def test_current_overrides_propagates_errors_instead_of_returning_nothing(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    assert observer.current_overrides() == []  # no Hydra app: honestly nothing
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: (_ for _ in ()).throw(ValueError("broken"))))
    with pytest.raises(ValueError, match="broken"):
        observer.current_overrides()


def test_a_restart_without_known_overrides_is_refused(tmp_path):
    clock, members = population(tmp_path)  # outside a Hydra app: the command line is unknown
    members[3].algo.config["lr_schedule"] = "linear"  # its scheduler owns lr: changing lr needs a restart
    with pytest.raises(ConfigError, match="PBT member 3 cannot restart.*overrides are unknown"):
        run_rounds(clock, members, 3, hold=True)  # member 3 is far below the others: it exploits


# ---- resume -----------------------------------------------------------------------------------------------
def _history(ws: Workspace, member: int, n: int) -> None:
    ws.ensure_population(2)
    for it in range(1, n + 1):
        ws.write_checkpoint(make_meta(member, it, num_policies=2, params={LR: 1e-3 * it}), {"model": {}})


def test_resume_falls_back_to_the_newest_loadable_checkpoint(tmp_path, caplog):
    ws = Workspace(tmp_path)
    _history(ws, 1, 3)
    (ws.member_dir(1) / "000003.pth").unlink()  # gone (a garbled or deleted file)
    (ws.member_dir(1) / "000002.pth").write_bytes(b"garbage")
    cfg = member_cfg(tmp_path)
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.observer"):
        start = observer.initial_pbt_check(cfg)
    assert start.kind == "resume" and start.iteration == 1
    assert cfg.checkpoint == str(ws.member_dir(1) / "000001.pth")
    assert OmegaConf.select(cfg, LR) == pytest.approx(1e-3)
    assert "resuming from iteration 1" in caplog.text and "iteration 3" in caplog.text
    resume = [e for e in ws.read_lineage() if e.event == "resume"]
    assert resume[-1].iteration == 1 and resume[-1].extra["checkpoint"].endswith("000001.pth")


def test_resume_without_any_loadable_checkpoint_starts_from_scratch_and_says_so(tmp_path, caplog):
    ws = Workspace(tmp_path)
    _history(ws, 1, 2)
    for p in ws.member_dir(1).glob("*.pth"):
        p.unlink()
    cfg = member_cfg(tmp_path)
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.observer"):
        start = observer.initial_pbt_check(cfg)
    assert start.kind == "scratch" and start.iteration == 2 and not cfg.checkpoint
    assert "FROM SCRATCH" in caplog.text and "iteration 2" in caplog.text
    assert OmegaConf.select(cfg, LR) == pytest.approx(2e-3)  # its own newest hyperparameters
    resume = [e for e in ws.read_lineage() if e.event == "resume"]
    assert resume[-1].mode == "from_scratch" and resume[-1].frames == 0


def test_a_resuming_member_removes_its_own_leftover_temp_files(tmp_path):
    ws = Workspace(tmp_path)
    _history(ws, 1, 1)
    leftovers = [ws.member_dir(1) / ".000002.pth.abc123.tmp", ws.member_dir(1) / ".000002.yaml.x.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")  # a SIGKILL mid-write leaves these; fresh ones (not 600 s old)
    other = ws.member_dir(0) / ".000001.pth.zz.tmp"
    other.parent.mkdir()
    other.write_bytes(b"someone else's")
    observer.initial_pbt_check(member_cfg(tmp_path))
    assert not any(p.exists() for p in leftovers)
    assert other.exists()  # another member's folder is not ours to clean


def test_a_member_started_again_after_its_end_trains_nothing(tmp_path):
    ws = Workspace(tmp_path)
    _history(ws, 1, 1)
    final = make_meta(1, 2, num_policies=2, params={LR: 2e-3}, finished=True, frames=4096)
    ws.write_checkpoint(final, {"model": {}})
    result = train.run_training(member_cfg(tmp_path))  # rl_games would train one more epoch: over budget
    assert result.frames == 4096 and result.checkpoint == str(ws.member_dir(1) / "000002.pth")
    assert ws.current_claim(1) is None  # released: nothing runs as member 1
    assert [m.iteration for m in ws.member_history(1)] == [1, 2]  # no metadata written


def test_injected_enospc_fails_every_workspace_write_while_its_flag_exists(tmp_path, monkeypatch):
    flag = tmp_path / "full"
    monkeypatch.setenv("POPTRAIN_CHAOS_ENOSPC_FILE", str(flag))
    ws = Workspace(tmp_path / "ws")
    ws.write_checkpoint(make_meta(0, 1), {"w": torch.zeros(1)})
    flag.touch()
    with pytest.raises(WorkspaceError, match="disk full") as err:
        ws.write_checkpoint(make_meta(0, 2), {"w": torch.zeros(1)})
    assert isinstance(err.value.__cause__, OSError)  # what the observer reads as "skip this PBT iteration"
    with pytest.raises(WorkspaceError, match="cannot append"):
        ws.append_lineage("mutate", 0)
    assert not list(ws.member_dir(0).glob("*2.*")) and not list(ws.member_dir(0).glob(".*.tmp"))
    flag.unlink()
    ws.write_checkpoint(make_meta(0, 2), {"w": torch.zeros(1)})


def test_a_member_killed_at_its_budget_before_its_final_write_ends_without_an_extra_epoch(tmp_path):
    """Found by benchmarks/chaos.py: resumed from its last interval checkpoint (epoch == max_epochs), rl_games
    trained epoch max_epochs + 1; the member overshot its frame budget by one epoch."""
    ws = Workspace(tmp_path)
    ws.ensure_population(2)
    ws.write_checkpoint(make_meta(1, 7, num_policies=2, epoch=60, frames=61440), {"model": {}})
    cfg = member_cfg(tmp_path, 1, 2, "max_iterations=60")
    start = observer.initial_pbt_check(cfg)
    assert start.finished is not None and start.finished.iteration == 8 and start.finished.frames == 61440
    final = ws.latest(1)
    assert final.finished and final.iteration == 8 and final.epoch == 60
    assert ws.load_state(final) == {"model": {}}
    assert ws.current_claim(1) is None


def test_best_export_under_the_lock_removes_leftovers_of_an_exporter_killed_mid_write(tmp_path):
    """The chaos suite once left best/.checkpoint.pth.<random>.tmp: a member killed while exporting."""
    ws = Workspace(tmp_path / "ws")
    meta = make_meta(0, 1)
    state = {"model": {"w": torch.zeros(2)}}
    best = tmp_path / "ws" / "best"
    best.mkdir(parents=True)
    leftover = best / ".checkpoint.pth.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    ws.export_best(meta, state, {"task": {"name": "Cartpole"}})  # no lock held: may be another's write
    assert leftover.exists()
    ws.export_best(meta, state, {"task": {"name": "Cartpole"}}, clean_temp=True)
    assert not leftover.exists()
    assert sorted(p.name for p in best.iterdir()) == ["checkpoint.pth", "config.yaml", "meta.yaml"]
