"""Time-sliced members (poptrain.pbt.slots): real rl_games slot processes hosting several members each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_pbt_e2e import wait_all

from poptrain.errors import ConfigError
from poptrain.pbt.slot_status import read_slot_status
from poptrain.pbt.slots import group_members, parse_slot_argv, slot_argv
from poptrain.pbt.workspace import Workspace

NUM_ENVS = 64
EPOCH_FRAMES = NUM_ENVS * 16  # num_envs x horizon_length of CartpolePPO


def shared(
    ws: Path, train_dir: Path, n: int, epochs: int, mutation: str = "cartpole_env", initial_delay: int = 8
) -> list[str]:
    return [
        "task=Cartpole",
        f"num_envs={NUM_ENVS}",
        f"max_iterations={epochs}",
        f"train_dir={train_dir}",
        "train.params.config.save_frequency=0",
        "pbt=pbt_default",
        f"pbt/mutation={mutation}",
        f"pbt.num_policies={n}",
        f"pbt.workspace={ws}",
        f"pbt.interval_steps={8 * EPOCH_FRAMES}",
        f"pbt.start_after={8 * EPOCH_FRAMES}",
        f"pbt.initial_delay={initial_delay * EPOCH_FRAMES}",
        "pbt.replace_rule=threshold",
        "pbt.threshold_std=0",
        "pbt.threshold_abs=0",
        "pbt.mutation_rate=1.0",
        "pbt.objective_grace_steps=0",
    ]


def slot_cmds(ws: Path, train_dir: Path, n: int, k: int, epochs: int, **kw) -> list[list[str]]:
    members = [
        [
            sys.executable,
            "-m",
            "poptrain.train",
            *shared(ws, train_dir, n, epochs, **kw),
            f"pbt.policy_idx={i}",
            f"experiment=m{i}",
            f"seed={i + 1}",
        ]
        for i in range(n)
    ]
    return group_members(members, k)


def start(argv: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        argv, stdout=log.open("a"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def decisions(ws: Path) -> list[dict]:
    return [json.loads(line) for line in (ws / "slots" / "decisions.jsonl").read_text().splitlines()]


# ---- the command ----------------------------------------------------------------------------------------
def test_member_commands_group_round_robin_into_slot_commands_and_parse_back():
    members = [
        ["py", "-m", "poptrain.train", "task=Cartpole", f"pbt.policy_idx={i}", f"seed={i}", "x=1"]
        for i in range(5)
    ]
    slots = group_members(members, 2)
    assert slots[0] == [
        "py",
        "-m",
        "poptrain.pbt.slots",
        "--slot",
        "0",
        "--member",
        "pbt.policy_idx=0",
        "seed=0",
        "--member",
        "pbt.policy_idx=2",
        "seed=2",
        "--member",
        "pbt.policy_idx=4",
        "seed=4",
        "--",
        "task=Cartpole",
        "x=1",
    ]
    spec = parse_slot_argv(slots[1][3:])
    assert spec.slot == 1 and spec.members == (("pbt.policy_idx=1", "seed=1"), ("pbt.policy_idx=3", "seed=3"))
    assert spec.shared == ("task=Cartpole", "x=1")
    assert slot_argv("py", 1, spec.members, spec.shared) == slots[1]
    assert len(group_members(members, 8)) == 5  # never an empty slot


def test_slot_members_compose_through_the_one_compose_path():
    from omegaconf import OmegaConf

    from poptrain.config import compose
    from poptrain.pbt.slots import compose_members

    spec = parse_slot_argv(
        ["--slot", "0", "--member", "pbt.policy_idx=0", "seed=-1", "--member", "pbt.policy_idx=1", "seed=5",
         "--", "task=Cartpole", "pbt=pbt_default", "num_envs=8"]
    )  # fmt: skip
    first, second = compose_members(spec)
    assert OmegaConf.to_container(second) == OmegaConf.to_container(compose(*spec.shared, *spec.members[1]))
    assert second.pbt.policy_idx == 1 and second.num_envs == 8
    assert first.seed != -1  # config.prepare drew it, as for a member started by the CLI
    bad = parse_slot_argv(["--slot", "0", "--member", "pbt.policy_idx=0", "--", "task=Nope"])
    with pytest.raises(ConfigError, match="unknown task 'Nope'; known: .*Cartpole"):
        compose_members(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--slot", "0", "--member", "pbt.policy_idx=0"], "needs '--'"),
        (["--slot", "0", "--", "task=Cartpole"], "at least one --member"),
        (["--slot", "0", "--member", "lr=1", "--", "x=1"], "'lr=1' is invalid; valid: pbt.policy_idx=..."),
        (
            ["--slot", "0", "--member", "pbt.policy_idx=0", "experiment=../x", "--"],
            "experiment must be letters",
        ),
        (["--slot", "0", "--member", "pbt.policy_idx=0;rm", "--"], "must be an integer"),
        (["--slot", "0", "--member", "seed=1", "--"], "pbt.policy_idx exactly once"),
        (["--slot", "0", "--member", "pbt.policy_idx=0", "--", "seed=3"], "set per member"),
        (["--slot", "x", "--member", "pbt.policy_idx=0", "--"], "'--slot' is invalid"),
    ],
)
def test_bad_slot_commands_name_the_bad_element(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_slot_argv(argv)


def test_members_that_differ_beyond_their_own_keys_cannot_share_a_slot():
    a = ["py", "-m", "poptrain.train", "task=Cartpole", "pbt.policy_idx=0"]
    b = ["py", "-m", "poptrain.train", "task=Acrobot", "pbt.policy_idx=1"]
    with pytest.raises(ConfigError, match=r"#1 differs from #0 in \['task=Acrobot', 'task=Cartpole'\]"):
        group_members([a, b], 1)
    with pytest.raises(ConfigError, match="every command must set pbt.policy_idx"):
        group_members([a[:-1], a[:-1]], 1)


# ---- real slots -----------------------------------------------------------------------------------------
EPOCHS = 40


@pytest.fixture(scope="module")
def four_on_two(tmp_path_factory):
    """A population of 4 launched with ``--backend processes --slots 2``: 2 slot processes, 2 members each."""
    from poptrain.launcher.run import main

    root = tmp_path_factory.mktemp("slots")
    with pytest.MonkeyPatch.context() as mp:
        module = population_module(root, mp, epochs=EPOCHS)
        base = ["--run", module, "--backend", "processes", "--train_dir", str(root / "td"), "--slots", "2"]
        refused = main([*base, "--max_parallel", "1"])  # every slot must run at once: refused before starting
        started_anything = (root / "ws").exists()
        code = main([*base, "--max_parallel", "2"])
    return root, root / "ws", (refused, started_anything, code)


def test_time_sliced_members_end_at_exactly_their_own_budget(four_on_two):
    root, ws, (refused, started_anything, code) = four_on_two
    assert refused == 2 and not started_anything
    folder = root / "td" / "slotpop" / "cp"
    logs = sorted(folder.glob("slot_*/log.txt"))
    assert code == 0, [p.read_text()[-3000:] for p in logs]
    assert [p.parent.name for p in logs] == ["slot_0", "slot_1"]
    assert (
        f"slot: slot=0 members=0,2 frames={EPOCHS * EPOCH_FRAMES},{EPOCHS * EPOCH_FRAMES}"
        in logs[0].read_text()
    )
    w = Workspace(ws)
    for member in range(4):
        final = w.latest(member)
        assert final is not None and final.finished and final.frames == EPOCHS * EPOCH_FRAMES, final
        # each member logs to its own folder, as if it ran alone
        assert final.experiment == f"{member:02d}_cp" and (folder / final.experiment / "summaries").is_dir()
    assert read_slot_status(ws) == {}  # nobody running or parked any more
    status = json.loads((ws / "slots" / "slot_0.json").read_text())
    assert status["members"] == [0, 2] and status["finished"] == [0, 2] and status["switches"] >= 8


def test_every_decision_compares_members_at_the_same_frame_count(four_on_two):
    _, ws, _ = four_on_two
    made = decisions(ws)
    # one decision per member per interval mark before the budget (8, 16, 24, 32 epochs)
    assert sorted((d["member"], d["frames"]) for d in made) == sorted(
        (m, e * EPOCH_FRAMES) for m in range(4) for e in (8, 16, 24, 32)
    )
    for d in made:
        assert d["candidate_frames"] == {str(m): d["frames"] for m in range(4)}, d
    assert any(d["action"] == "exploit" for d in made)
    events = Workspace(ws).read_lineage()
    exploits = [e for e in events if e.event == "exploit"]
    assert exploits and all(e.mode == "hot_swap" for e in exploits)
    assert not [e for e in events if e.event == "restart"]
    # the exploit copied the leader's checkpoint of that same generation
    for e in exploits:
        assert e.frames == (e.source_iteration) * 8 * EPOCH_FRAMES, e


def test_switching_restores_everything_a_member_owns(tmp_path):
    """Member 0 trained alone, and time-sliced with member 1 (no PBT decision changes anything: the initial
    delay is beyond the budget), ends with bit-identical weights and optimizer state: weights, optimizer,
    counters, lr, RNG and env state all came back at every switch."""
    finals = []
    for n in (1, 2):
        ws = tmp_path / f"ws{n}"
        cmd = slot_cmds(
            ws, tmp_path / f"runs{n}", n=n, k=1, epochs=24, mutation="lr_only", initial_delay=1000
        )[0]
        assert wait_all([start(cmd, tmp_path / f"log{n}.txt")], 420) == [0], (
            tmp_path / f"log{n}.txt"
        ).read_text()[-3000:]
        w = Workspace(ws)
        finals.append(w.load_state(w.latest(0)))
    alone, sliced = finals
    assert alone["frame"] == sliced["frame"] == 24 * EPOCH_FRAMES
    for key, value in alone["model"].items():
        assert torch.equal(value, sliced["model"][key]), key
    for a, b in zip(alone["optimizer"]["state"].values(), sliced["optimizer"]["state"].values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"])


def test_a_slot_killed_with_sigkill_resumes_its_members(tmp_path):
    ws = tmp_path / "ws"
    epochs = 64
    cmds = slot_cmds(ws, tmp_path / "runs", n=4, k=2, epochs=epochs)
    procs = [start(c, tmp_path / f"slot{i}.txt") for i, c in enumerate(cmds)]
    w = Workspace(ws)
    deadline = time.monotonic() + 300
    # kill slot 1 once both its members have written at least two checkpoints (mid-run)
    while time.monotonic() < deadline and not all(len(w.member_history(m)) >= 2 for m in (1, 3)):
        time.sleep(0.1)
    # frozen mid-run (slot 0 soon waits for it at the next generation): `poptrain status` shows, per slot,
    # the member it runs and the one it keeps parked
    os.killpg(procs[1].pid, signal.SIGSTOP)
    out = subprocess.run(
        [sys.executable, "-m", "poptrain", "status", str(ws), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    states = {m["member"]: m["state"] for m in json.loads(out.stdout)["members"]}
    assert sorted([states[0], states[2]]) == sorted([states[1], states[3]]) == ["parked", "running"], out
    os.killpg(procs[1].pid, signal.SIGKILL)
    assert procs[1].wait(timeout=30) == -signal.SIGKILL
    killed_at = {m: w.latest(m).frames for m in (1, 3)}
    assert all(f < epochs * EPOCH_FRAMES for f in killed_at.values())
    # the other slot waits at the next generation; the same command starts slot 1 again
    restarted = start(cmds[1], tmp_path / "slot1.txt")
    assert wait_all([procs[0], restarted], 420) == [0, 0], [
        (tmp_path / f"slot{i}.txt").read_text()[-3000:] for i in range(2)
    ]
    resumes = [e for e in w.read_lineage() if e.event == "resume"]
    assert sorted(e.member for e in resumes) == [1, 3]
    for e in resumes:  # each from its own newest checkpoint
        assert e.frames == killed_at[e.member], (e, killed_at)
    for member in range(4):
        final = w.latest(member)
        assert final.finished and final.frames == epochs * EPOCH_FRAMES, final
    for d in decisions(ws):
        assert set(d["candidate_frames"].values()) == {d["frames"]}, d


# ---- through the launcher ---------------------------------------------------------------------------------
def population_module(tmp_path: Path, monkeypatch, n: int = 4, epochs: int = 24) -> str:
    """A RunDescription module: a Cartpole population of ``n`` members (seeds 1..n), as experiments/ write them."""
    ws = tmp_path / "ws"
    overrides = [o for o in shared(ws, tmp_path / "unused", n, epochs) if not o.startswith("train_dir=")]
    name = f"slots_pop_{abs(hash(str(tmp_path)))}"  # one module per test: imported modules are cached
    (tmp_path / f"{name}.py").write_text(
        "import sys\n"
        "from poptrain.launcher.run_description import Experiment, ParamList, RunDescription\n"
        f"RUN_DESCRIPTION = RunDescription('slotpop', [Experiment('cp', [sys.executable, '-m', 'poptrain.train', "
        f"*{overrides!r}], ParamList([{{'pbt.policy_idx': i, 'seed': i + 1}} for i in range({n})])"
        ".generate_params(False))], experiment_arg_name='experiment', experiment_dir_arg_name='train_dir', "
        "param_prefix='', customize_experiment_name=False)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.slurm
def test_slurm_backend_submits_one_job_per_slot_to_the_real_cluster(
    slurm_cluster, tmp_path, monkeypatch, capsys
):
    from poptrain.launcher.run import main

    module = population_module(tmp_path, monkeypatch, epochs=16)
    base = [
        "--run",
        module,
        "--backend",
        "slurm",
        "--train_dir",
        str(tmp_path / "td"),
        "--slurm_slots",
        "2",
        "--slurm_workdir",
        str(tmp_path / "sw"),
        "--slurm_gpus_per_job",
        "0",
        "--slurm_cpus_per_gpu",
        "1",
    ]
    assert main([*base, "--slurm_print_only"]) == 0
    script = capsys.readouterr().out  # the rendered sbatch scripts, nothing submitted
    assert "-m poptrain.pbt.slots --slot 1 --member pbt.policy_idx=1 seed=2 experiment=01_cp" in script
    assert "--member pbt.policy_idx=3 seed=4 experiment=03_cp -- task=Cartpole" in script
    assert not (tmp_path / "sw" / "slotpop" / "jobs.json").exists()
    assert main([*base, "--slurm_wait"]) == 0, capsys.readouterr().out
    jobs = json.loads((tmp_path / "sw" / "slotpop" / "jobs.json").read_text())
    assert sorted(jobs) == ["slot_0", "slot_1"]
    w = Workspace(tmp_path / "ws")
    assert all(w.latest(m).finished and w.latest(m).frames == 16 * EPOCH_FRAMES for m in range(4))
