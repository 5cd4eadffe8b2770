"""Chaos suite: a PBT population on Cartpole under SIGKILLs, a launcher crash, garbled files and a full disk.

    nice -n 10 python benchmarks/chaos.py --out /tmp/chaos            # full: 8 members, >= 30 kills
    python benchmarks/chaos.py --out /tmp/chaos --small                # the CI size (tests/test_chaos.py)

One calm run (no faults) and one chaos run of the same population, both through the real launcher
(``poptrain.launcher.run --backend processes --max_restarts K``) and real rl_games members. While the chaos run
trains, a driver in this process:

- SIGKILLs random members at random moments (Poisson arrivals over the calm run's duration), spread so no member
  is killed more often than the launcher restarts it; some kills land *during* a checkpoint write: every atomic
  write pauses ``--write_delay`` s between its temp file and the rename (``POPTRAIN_CHAOS_WRITE_DELAY_S``) and the
  driver kills a member the moment a ``.tmp`` file shows up in its folder;
- SIGKILLs the launcher once together with every member process (the node-loss case) and starts it again with the
  same command line;
- garbles random workspace files (bytes flipped, truncated, garbage appended to lineage.jsonl);
- fills the disk once for ``--disk_full_s`` s: the workspace lives on a small tmpfs that a filler file fills (when
  this runs as root and can mount one), else every workspace write fails with ENOSPC meanwhile
  (``POPTRAIN_CHAOS_ENOSPC_FILE``).

Then it audits the workspace and prints one JSON report (also written to ``<out>/chaos_report.json``): kills made
and survived, members finishing at exactly their frame budget, garbled files rejected vs accepted, lineage
consistent with metadata, no temp file left, best/ playable, and the wall-time overhead vs the calm run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HORIZON = 16  # CartpolePPO horizon_length: frames per epoch = num_envs x 16


@dataclass
class ChaosConfig:
    """Size of the population and of the faults (defaults: the full benchmark)."""

    members: int = 8  # population size (every member runs at once: --max_parallel = members)
    num_envs: int = 64  # envs per member (small: 8 members share 2 loaded cores)
    epochs: int = 60  # each member's budget in epochs (frames = epochs x num_envs x 16)
    interval_epochs: int = 6  # a PBT iteration (checkpoint + decision) every this many epochs
    kills: int = 30  # random SIGKILLs of members (at least this many are made)
    write_kills: int = 5  # of which land while a checkpoint is being written
    garbles: int = 8  # workspace files garbled
    launcher_restart: bool = True  # SIGKILL the launcher with its members once, then start it again
    disk_full_s: float = 6.0  # how long the disk is full (0: never)
    disk: str = "auto"  # auto: a filled tmpfs when it can be mounted (root), else injected ENOSPC | enospc
    write_delay_s: float = 0.25  # pause inside every atomic write (the window for kills during writes)
    max_restarts: int = 12  # the launcher's --max_restarts (per member, per launcher session)
    seed: int = 0
    calm: bool = True  # also run without faults, for the wall-time overhead
    play: bool = True  # play best/ at the end

    @property
    def epoch_frames(self) -> int:
        return self.num_envs * HORIZON

    @property
    def budget_frames(self) -> int:
        return self.epochs * self.epoch_frames


SMALL = dict(members=3, num_envs=32, epochs=24, interval_epochs=4, kills=3, write_kills=1, garbles=3,
             launcher_restart=False, disk_full_s=3.0, disk="enospc", max_restarts=4, calm=False, play=False)  # fmt: skip


@dataclass
class Kill:
    """One SIGKILL the driver made."""

    t: float  # seconds since the chaos run started
    member: int  # -1: the launcher
    pid: int
    during_write: bool = False  # a .tmp of this member existed at the moment of the kill
    tmp: str = ""


@dataclass
class ChaosLog:
    kills: list[Kill] = field(default_factory=list)
    garbled: list[dict[str, Any]] = field(default_factory=list)
    disk_full: dict[str, Any] = field(default_factory=dict)
    launcher_restarts: int = 0


# ---- the population ----------------------------------------------------------------------------------------
RUN_MODULE = """
import sys
from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription
TRAIN = {train!r}
RUN_DESCRIPTION = RunDescription(
    "chaos", experiments=[Experiment("cartpole", [sys.executable, *TRAIN], ParamGrid([("pbt.policy_idx", {idx!r})]))],
    experiment_arg_name="experiment", experiment_dir_arg_name="train_dir", param_prefix="",
    customize_experiment_name=False,
)
"""


def member_argv(cfg: ChaosConfig, ws: Path) -> list[str]:
    interval = cfg.interval_epochs * cfg.epoch_frames
    return [
        "-m", "poptrain.train", "task=Cartpole", f"num_envs={cfg.num_envs}", f"max_iterations={cfg.epochs}",
        "num_threads=1", "train.params.config.save_frequency=0", "pbt=pbt_default", "pbt/mutation=cartpole_env",
        f"pbt.num_policies={cfg.members}", f"pbt.workspace={ws}", f"pbt.interval_steps={interval}",
        f"pbt.start_after={interval}", f"pbt.initial_delay={interval}", "pbt.replace_rule=threshold",
        "pbt.threshold_std=0.2", "pbt.threshold_abs=0", "pbt.objective_grace_steps=0", "pbt.keep_checkpoints=3",
        "pbt.stale_after_s=3600",
    ]  # fmt: skip


class Population:
    """A launcher running the population; knows its members' pids through their claims."""

    def __init__(self, cfg: ChaosConfig, root: Path, ws: Path, env: dict[str, str]):
        self.cfg, self.root, self.ws, self.env = cfg, root, ws, env
        mod_dir = root / "module"
        mod_dir.mkdir(parents=True, exist_ok=True)
        (mod_dir / "chaos_run.py").write_text(
            RUN_MODULE.format(train=member_argv(cfg, ws), idx=list(range(cfg.members)))
        )
        self.env["PYTHONPATH"] = os.pathsep.join([str(mod_dir), str(REPO / "src"), env.get("PYTHONPATH", "")])
        self.argv = [
            sys.executable, "-m", "poptrain.launcher.run", "--run", "chaos_run", "--train_dir", str(root / "train"),
            "--backend", "processes", "--max_parallel", str(cfg.members), "--pause_between", "0",
            "--max_restarts", str(cfg.max_restarts),
        ]  # fmt: skip
        self.launcher: subprocess.Popen[bytes] | None = None
        self.sessions = 0

    def start(self) -> None:
        self.sessions += 1
        log = (self.root / f"launcher{self.sessions}.txt").open("wb")
        self.launcher = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def member_pids(self) -> dict[int, int]:
        """member -> pid of the process holding its claim (alive ones only)."""
        from poptrain.pbt.workspace import Workspace, _pid_alive

        ws = Workspace(self.ws)
        out = {}
        for m in range(self.cfg.members):
            claim = ws.current_claim(m)
            if claim and type(claim.get("pid")) is int and _pid_alive(claim["pid"]):
                out[m] = claim["pid"]
        return out

    def progress(self, best: dict[int, int]) -> float:
        """Mean over members of the most frames each has reported (``best`` keeps the maxima), / budget."""
        from poptrain.pbt.workspace import Workspace

        ws = Workspace(self.ws)
        for m in range(self.cfg.members):
            with contextlib.suppress(OSError):
                names = [n for n in os.listdir(ws.member_dir(m)) if n.endswith(".yaml") and n[0].isdigit()]
                if names:
                    meta = ws.latest(m)
                    if meta is not None:
                        best[m] = max(best.get(m, 0), meta.frames)
        return sum(min(f, self.cfg.budget_frames) for f in best.values()) / (
            self.cfg.members * self.cfg.budget_frames
        )

    def reported_frames(self) -> dict[int, int | None]:
        """member -> frames in the last ``train: frames=`` line of its log (None: never finished)."""
        out: dict[int, int | None] = {}
        for m in range(self.cfg.members):
            logs = list((self.root / "train").glob(f"chaos/*/{m:02d}_*/log.txt"))
            lines = [
                ln
                for p in logs
                for ln in p.read_text(errors="replace").splitlines()
                if ln.startswith("train: ")
            ]
            out[m] = int(lines[-1].split("frames=", 1)[1].split()[0]) if lines else None
        return out

    def finished(self) -> set[int]:
        from poptrain.pbt.workspace import Workspace

        ws = Workspace(self.ws)
        return {m for m in range(self.cfg.members) if (meta := ws.latest(m)) is not None and meta.finished}

    def our_member_processes(self) -> list[int]:
        """Every live process whose command line names this population's workspace (members between claims too)."""
        pids = []
        needle = f"pbt.workspace={self.ws}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0"):
                    pids.append(int(entry))
        return pids


# ---- faults ---------------------------------------------------------------------------------------------
def sigkill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def garble(path: Path, rng: random.Random) -> dict[str, Any]:
    """Damage one file the way a broken disk, a careless co-user or a torn copy would."""
    if path.name == "lineage.jsonl":  # appended (O_APPEND, like the members): no member's line is lost
        with open(path, "ab") as f:
            f.write(b'{"event": "exploit", "member": 0, "sou\xff\xfe garbage\n')
        return {"path": str(path), "how": "garbage line appended", "size": path.stat().st_size}
    data = path.read_bytes()
    if rng.random() < 0.5 and len(data) > 8:
        how = "truncated"
        new = data[: rng.randrange(1, len(data))]
    else:
        how = "bytes flipped"
        buf = bytearray(data or b"\0")
        for _ in range(max(1, len(buf) // 50)):
            i = rng.randrange(len(buf))
            buf[i] ^= 0xFF
        new = bytes(buf)
    # written in place (not atomically): readers may see it half-way, like a co-user's editor would leave it
    path.write_bytes(new)
    return {"path": str(path), "how": how, "size": len(new), "sha256": hashlib.sha256(new).hexdigest()}


def garble_candidates(ws: Path, finished: set[int]) -> list[Path]:
    """Files to damage: those of members still running (a finished member has nobody left to repair its
    files), the lineage log and best/."""
    files = [
        p for p in ws.glob("[0-9][0-9][0-9]/[0-9]*.*")
        if p.suffix in (".yaml", ".pth") and int(p.parent.name) not in finished
    ]  # fmt: skip
    files += [ws / "lineage.jsonl"] if (ws / "lineage.jsonl").exists() else []
    files += [p for p in (ws / "best").glob("*") if p.is_file()] if (ws / "best").is_dir() else []
    return files


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Any:
    """A small tmpfs at ``path`` (root only; ``size_mb`` 0: none); yields False when none is mounted."""
    path.mkdir(parents=True, exist_ok=True)
    ok = (
        size_mb > 0
        and os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(ws: Path, on_tmpfs: bool, flag: Path) -> Path:
    """Make the workspace's disk full: a filler file up to ENOSPC on the tmpfs, else the ENOSPC hook's flag."""
    if not on_tmpfs:
        flag.touch()
        return flag
    filler = ws / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError):  # the last bytes too: leave nothing
        with open(filler, "ab") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    return filler


# ---- the run --------------------------------------------------------------------------------------------
def run_population(cfg: ChaosConfig, root: Path, chaos: bool, on_tmpfs: bool,
                   ws_dir: Path) -> tuple[float, int, ChaosLog, Population]:  # fmt: skip
    """Run the population to the end (with faults when ``chaos``); returns wall time, launcher rc, the log."""
    rng = random.Random(cfg.seed)
    flag = root / "disk_full.flag"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("POPTRAIN_PBT_RESTART", None)
    if chaos:
        env["POPTRAIN_CHAOS_WRITE_DELAY_S"] = str(cfg.write_delay_s)
        env["POPTRAIN_CHAOS_ENOSPC_FILE"] = str(flag)
    pop = Population(cfg, root, ws_dir, env)
    clog = ChaosLog()
    t0 = time.monotonic()
    pop.start()
    # Fault schedule in training progress, not seconds (the same faults on a fast or a loaded machine): progress is
    # the mean over members of the most frames each has reported, as a fraction of the budget. Kills and garbles
    # at random points in [5 %, 75 %], the launcher crash at 30 %, the full disk at 50 %.
    kill_at = sorted(rng.uniform(0.05, 0.75) for _ in range(cfg.kills - cfg.write_kills))
    garble_at = sorted(rng.uniform(0.05, 0.75) for _ in range(cfg.garbles))
    launcher_at = 0.3 if cfg.launcher_restart else None
    disk_at = 0.5 if cfg.disk_full_s > 0 else None
    best_frames: dict[int, int] = {}
    progress, progress_read = 0.0, 0.0
    write_kills_left = cfg.write_kills
    seen_tmps: set[str] = set()
    killed_in_session: dict[int, int] = {}
    disk_until: float | None = None
    filler: Path | None = None
    while chaos:
        assert pop.launcher is not None
        rc = pop.launcher.poll()
        if rc is not None:
            break
        now = time.monotonic() - t0
        if now - progress_read > 0.25:
            progress, progress_read = pop.progress(best_frames), now
        pids = pop.member_pids()
        candidates = [m for m in pids if killed_in_session.get(m, 0) < cfg.max_restarts - 1]
        if write_kills_left and disk_until is None:  # a kill during a checkpoint write
            for m in candidates:
                # a checkpoint or its metadata being written now: a temp file not seen before (a leftover of an
                # earlier kill stays until the relaunched member removes it; killing that one is no mid-write kill)
                tmps = [p for p in pop.ws.joinpath(f"{m:03d}").glob(".[0-9]*.tmp") if p.name not in seen_tmps]
                seen_tmps.update(p.name for p in tmps)
                if tmps and sigkill(pids[m]):
                    clog.kills.append(Kill(now, m, pids[m], during_write=tmps[0].exists(), tmp=tmps[0].name))
                    killed_in_session[m] = killed_in_session.get(m, 0) + 1
                    write_kills_left -= 1
                    break
        if kill_at and progress >= kill_at[0] and candidates:
            kill_at.pop(0)
            m = min(candidates, key=lambda k: (killed_in_session.get(k, 0), rng.random()))
            if sigkill(pids[m]):
                clog.kills.append(Kill(now, m, pids[m]))
                killed_in_session[m] = killed_in_session.get(m, 0) + 1
        if garble_at and progress >= garble_at[0] and (files := garble_candidates(pop.ws, pop.finished())):
            with contextlib.suppress(OSError):  # a file replaced between listing and garbling: the next one
                clog.garbled.append({"t": now, **garble(rng.choice(files), rng)})
                garble_at.pop(0)
        if launcher_at is not None and progress >= launcher_at and pids:
            launcher_at = None
            sigkill(pop.launcher.pid)
            clog.kills.append(Kill(now, -1, pop.launcher.pid))
            pop.launcher.wait()
            for pid in pop.our_member_processes():  # the node is lost: its members die with the launcher
                if sigkill(pid):
                    member = next((m for m, p in pids.items() if p == pid), -2)
                    clog.kills.append(Kill(now, member, pid))
            clog.launcher_restarts += 1
            killed_in_session.clear()
            pop.start()
        if disk_at is not None and progress >= disk_at:
            disk_at = None
            filler = fill_disk(pop.ws, on_tmpfs, flag)
            disk_until = now + cfg.disk_full_s
            clog.disk_full = {"t": now, "progress": round(progress, 3), "seconds": cfg.disk_full_s, "how": "tmpfs filled" if on_tmpfs else
                              "injected ENOSPC"}  # fmt: skip
        if disk_until is not None and now >= disk_until and filler is not None:
            filler.unlink()
            filler, disk_until = None, None
        time.sleep(0.02)  # 20 ms polls: well inside the write_delay window of a checkpoint write
    assert pop.launcher is not None
    rc = pop.launcher.wait()
    if filler is not None:
        filler.unlink()
    return time.monotonic() - t0, rc, clog, pop


# ---- audit ----------------------------------------------------------------------------------------------
def audit(cfg: ChaosConfig, pop: Population, clog: ChaosLog, rc: int) -> dict[str, Any]:
    """What survived: members, budgets, files, lineage vs metadata, temp files, best/."""

    from poptrain.pbt.workspace import Workspace

    ws = Workspace(pop.ws)
    finals = {m: ws.latest(m) for m in range(cfg.members)}
    exact = [m for m, f in finals.items() if f is not None and f.finished and f.frames == cfg.budget_frames]
    reported = pop.reported_frames()  # the "train: frames=" line each member's last process printed
    exact_reported = [m for m, f in reported.items() if f == cfg.budget_frames]
    histories = {m: ws.member_history(m) for m in range(cfg.members)}
    meta_files = sorted(pop.ws.glob("[0-9][0-9][0-9]/[0-9]*.yaml"))
    accepted = {(m.member, m.iteration) for h in histories.values() for m in h}
    rejected = [str(p) for p in meta_files if (int(p.parent.name), int(p.stem)) not in accepted]
    # garbled files that still hold the garbled bytes (a member may have rewritten one since: then it is new)
    still_garbled = []
    for g in clog.garbled:
        p = Path(g["path"])
        with contextlib.suppress(OSError):
            if "sha256" in g and hashlib.sha256(p.read_bytes()).hexdigest() == g["sha256"]:
                still_garbled.append(p)
    garbled_meta_accepted = [
        str(p) for p in still_garbled
        if p.suffix == ".yaml" and p.parent.name.isdigit() and (int(p.parent.name), int(p.stem)) in accepted
    ]  # fmt: skip
    garbled_pth_loaded = []
    for p in still_garbled:
        g = str(p)
        if p.suffix == ".pth" and p.parent.name.isdigit():
            meta = next((m for m in histories.get(int(p.parent.name), []) if m.checkpoint == p.name), None)
            if meta is not None:
                with contextlib.suppress(Exception):
                    ws.load_state(meta)
                    garbled_pth_loaded.append(g)
    raw_lines = [ln for ln in (pop.ws / "lineage.jsonl").read_bytes().split(b"\n") if ln.strip()]
    events = ws.read_lineage()
    exploits = {(e.member, e.source, e.source_iteration) for e in events if e.event == "exploit"}
    parents = [(m.member, m.parent["member"], m.parent["iteration"]) for h in histories.values() for m in h
               if m.parent is not None]  # fmt: skip
    backed = [p for p in parents if p in exploits]
    tmp_left = [str(p) for p in pop.ws.rglob(".*.tmp")]
    member_kills = [k for k in clog.kills if k.member >= 0]
    survived = [k for k in member_kills if k.member in exact]
    return {
        "launcher_exit_code": rc,
        "kills_made": len(clog.kills),
        "member_kills": len(member_kills),
        "kills_during_writes": sum(k.during_write for k in member_kills),
        "launcher_kills": sum(k.member == -1 for k in clog.kills),
        "kills_survived": len(survived),
        "members_finished_at_exact_budget": f"{len(exact)}/{cfg.members}",
        "members_lost": sorted(set(range(cfg.members)) - set(exact)),
        "final_frames": {m: (f.frames if f else None) for m, f in finals.items()},
        "members_reporting_exact_budget": f"{len(exact_reported)}/{cfg.members}",
        "budget_frames": cfg.budget_frames,
        "garbled_files": len(clog.garbled),
        "garbled_files_still_garbled_at_the_end": len(still_garbled),
        "metadata_files": len(meta_files),
        "metadata_accepted": len(meta_files) - len(rejected),
        "metadata_rejected": len(rejected),
        "garbled_metadata_still_accepted": garbled_meta_accepted,
        "garbled_checkpoints_still_loading": garbled_pth_loaded,
        "lineage_lines": len(raw_lines),
        "lineage_accepted": len(events),
        "lineage_rejected": len(raw_lines) - len(events),
        "metadata_parents_backed_by_lineage": f"{len(backed)}/{len(parents)}",
        "lineage_consistent": len(backed) == len(parents),
        "temp_files_left": tmp_left,
        "disk_full": clog.disk_full,
    }


def play_best(ws: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "play", str(ws), "num_envs=16", "play_episodes=4", "num_threads=1"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
    )  # fmt: skip
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("play: ")), "")
    return {"best_playable": out.returncode == 0 and bool(line), "play_line": line or out.stderr[-500:]}


def run_chaos(cfg: ChaosConfig, out: Path) -> dict[str, Any]:
    """Calm run (optional), chaos run, audit; returns the report. The driver and the audit read garbled files on
    purpose: poptrain's warnings about them are silenced for the duration (and the level restored after, since
    the CI test runs this inside pytest's process)."""
    import logging

    logger = logging.getLogger("poptrain")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _run_chaos(cfg, out)
    finally:
        logger.setLevel(level)


def _run_chaos(cfg: ChaosConfig, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"config": asdict(cfg)}
    calm_s = 0.0
    if cfg.calm:
        calm_root = out / "calm"
        calm_s, calm_rc, _, calm_pop = run_population(cfg, calm_root, False, False, calm_root / "ws")
        report["calm"] = {"wall_s": round(calm_s, 1), "launcher_exit_code": calm_rc,
                          "members_finished": len(calm_pop.finished())}  # fmt: skip
    chaos_root = out / "chaos"
    # the workspace on a small tmpfs (the disk that fills up); 64 MiB holds 8 members x 3 checkpoints many times
    with tmpfs(chaos_root / "ws", 64 if cfg.disk == "auto" else 0) as on_tmpfs:
        chaos_s, rc, clog, pop = run_population(cfg, chaos_root, True, on_tmpfs, chaos_root / "ws")
        report["chaos"] = {"wall_s": round(chaos_s, 1), "workspace_on_tmpfs": on_tmpfs}
        report["audit"] = audit(cfg, pop, clog, rc)
        if cfg.play:
            report["audit"].update(play_best(pop.ws))
        if on_tmpfs:  # keep the workspace for a post-mortem: the tmpfs goes away with the run
            shutil.copytree(pop.ws, out / "chaos_ws", dirs_exist_ok=True)
        report["kills"] = [asdict(k) for k in clog.kills]
        report["garbled"] = clog.garbled
    if calm_s:
        report["wall_overhead"] = f"{chaos_s / calm_s:.2f}x the calm run ({chaos_s:.0f} s vs {calm_s:.0f} s)"
    (out / "chaos_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder for both runs and chaos_report.json")
    parser.add_argument("--small", action="store_true", help="the CI size (3 members, 3 kills, no calm run)")
    for name, value in asdict(ChaosConfig()).items():
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{name}", type=kind, default=None, help=f"default {value}")
    args = parser.parse_args(argv)
    base = asdict(ChaosConfig())
    if args.small:
        base.update(SMALL)
    base.update({k: v for k, v in vars(args).items() if k in base and v is not None})
    cfg = ChaosConfig(**base)
    report = run_chaos(cfg, Path(args.out))
    print(json.dumps({k: v for k, v in report.items() if k not in ("kills", "garbled")}, indent=2))
    audit_ = report["audit"]
    ok = (
        audit_["launcher_exit_code"] == 0
        and not audit_["members_lost"]
        and audit_["lineage_consistent"]
        and not audit_["temp_files_left"]
        and not audit_["garbled_metadata_still_accepted"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
