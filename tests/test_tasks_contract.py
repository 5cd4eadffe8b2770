"""The tensor-task contract (poptrain.tasks.base) on every built-in task and on the Gymnasium adapter."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from poptrain.errors import ConfigError
from poptrain.tasks import _BUILTIN, make_task, task_names
from poptrain.tasks.base import VecTask

N = 64
# Tasks with a contract suite of their own: Playground (JAX) hands out fresh zero-copy views of immutable jax
# buffers every step instead of VecTask's in-place buffers; tests/tasks/test_playground.py covers it.
OWN_SUITE = {"Playground": "tests/tasks/test_playground.py"}
# Every built-in name; Gym is parametrized over env ids (one continuous, one discrete classic-control env).
CASES = [
    *[(name, {}) for name in sorted(_BUILTIN) if name not in ("Gym", *OWN_SUITE)],
    ("Gym", {"id": "Pendulum-v1"}),
    ("Gym", {"id": "CartPole-v1"}),
]
IDS = [name if not env else f"{name}-{env['id']}" for name, env in CASES]


def build(name: str, env: dict | None = None, num_envs: int = N, seed: int = 0):
    return make_task(name, {"name": name, "env": dict(env or {})}, num_envs=num_envs, device="cpu", seed=seed)


def random_actions(task, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Actions in (and, with scale > 1, beyond) the task's bounds; indices for Discrete spaces."""
    if getattr(task, "discrete", False):
        return torch.randint(0, int(task.action_space.n), (task.num_envs,), generator=gen)
    lo, hi = task.spec.action_low, task.spec.action_high
    u = torch.rand(task.num_envs, task.spec.num_actions, generator=gen) * 2 - 1
    return (lo + hi) / 2 + scale * u * (hi - lo) / 2


def test_every_builtin_name_is_covered():
    assert {name for name, _ in CASES} | set(OWN_SUITE) == set(_BUILTIN) and set(_BUILTIN) <= set(
        task_names()
    )
    root = Path(__file__).resolve().parents[1]
    assert all((root / path).is_file() for path in OWN_SUITE.values())


@pytest.mark.parametrize(("name", "env"), CASES, ids=IDS)
def test_shapes_dtypes_device(name, env):
    task = build(name, env)
    obs = task.reset()
    assert set(obs) == {"obs"} and obs["obs"].shape == (N, task.spec.num_obs)
    assert obs["obs"].dtype == torch.float32 and obs["obs"].device.type == "cpu"
    assert task.observation_space.shape == (task.spec.num_obs,)
    gen = torch.Generator().manual_seed(1)
    obs_dict, rew, done, extras = task.step(random_actions(task, gen))
    assert obs_dict["obs"].shape == (N, task.spec.num_obs) and obs_dict["obs"].dtype == torch.float32
    assert rew.shape == (N,) and rew.dtype == torch.float32
    assert done.shape == (N,) and done.dtype == torch.int64
    assert task.progress_buf.shape == (N,) and task.progress_buf.dtype == torch.int64
    assert extras["time_outs"].shape == (N,) and extras["time_outs"].dtype == torch.bool
    # The buffers returned are the task's own (rl_games keeps no copies it does not need).
    assert obs_dict["obs"] is task.obs_buf and rew is task.rew_buf and done is task.reset_buf
    if task.publishes_true_objective:
        assert extras["true_objective"].shape == (N,) and extras["true_objective"].dtype == torch.float32
    task.close()


@pytest.mark.parametrize(("name", "env"), CASES, ids=IDS)
def test_no_nan_over_many_random_steps_even_with_out_of_range_actions(name, env):
    task = build(name, env, num_envs=32)
    task.reset()
    gen = torch.Generator().manual_seed(2)
    finished = 0
    for _ in range(600):
        obs_dict, rew, done, extras = task.step(random_actions(task, gen, scale=3.0))
        assert torch.isfinite(obs_dict["obs"]).all() and torch.isfinite(rew).all()
        finished += int(done.sum())
    assert finished > 0  # episodes end within 600 steps (every task has a time limit <= 500)
    task.close()


@pytest.mark.parametrize(("name", "env"), CASES, ids=IDS)
def test_deterministic_under_a_seed(name, env):
    def rollout(seed: int) -> list[torch.Tensor]:
        task = build(name, env, num_envs=16, seed=seed)
        out = [task.reset()["obs"].clone()]
        gen = torch.Generator().manual_seed(3)
        for _ in range(250):
            obs_dict, rew, done, _ = task.step(random_actions(task, gen))
            out += [obs_dict["obs"].clone(), rew.clone(), done.clone()]
        task.close()
        return out

    a, b, c = rollout(5), rollout(5), rollout(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])  # another seed, other initial states


@pytest.mark.parametrize(("name", "env"), CASES, ids=IDS)
def test_progress_and_time_outs(name, env):
    """progress_buf counts steps of the current episode; time_outs marks done rows that hit the limit."""
    if name == "Gym":
        env = {**env, "kwargs": {"max_episode_steps": 9}}
    else:
        env = {"maxEpisodeLength": 9}
    task = build(name, env, num_envs=32)
    task.reset()
    assert (task.progress_buf == 0).all()
    gen = torch.Generator().manual_seed(4)
    seen_timeout = False
    for _ in range(40):
        before = task.progress_buf.clone()
        _, _, done, extras = task.step(random_actions(task, gen))
        d = done.bool()
        assert torch.equal(task.progress_buf[~d], before[~d] + 1)
        assert (task.progress_buf[d] == 0).all()
        time_outs = extras["time_outs"]
        assert not (time_outs & ~d).any()  # a time-out is always a done row
        assert d[before + 1 == 9].all()  # the limit always ends the episode
        assert (before[time_outs] + 1 == 9).all()
        assert (task.progress_buf < 9).all()
        seen_timeout |= bool(time_outs.any())
    assert seen_timeout
    task.close()


# ---- built-in tensor tasks: in-place resets of exactly the done rows ---------------------------------
TENSOR_TASKS = [name for name in sorted(_BUILTIN) if name not in ("Gym", *OWN_SUITE)]


@pytest.mark.parametrize("name", TENSOR_TASKS)
def test_resets_exactly_the_done_rows_in_place(name, monkeypatch):
    task = build(name, {"maxEpisodeLength": 25}, num_envs=48)
    assert isinstance(task, VecTask)
    task.reset()
    obs_buf = task.obs_buf
    reset_calls: list[torch.Tensor] = []
    original = task._reset_rows

    def spy(env_ids: torch.Tensor) -> None:
        reset_calls.append(env_ids.clone())
        original(env_ids)

    monkeypatch.setattr(task, "_reset_rows", spy)
    gen = torch.Generator().manual_seed(5)
    resets = 0
    for _ in range(120):
        prev_obs = task.obs_buf.clone()
        reset_calls.clear()
        obs_dict, _, done, _ = task.step(random_actions(task, gen))
        assert obs_dict["obs"] is obs_buf  # same storage, updated in place
        done_ids = done.nonzero().squeeze(-1)
        if done_ids.numel():
            assert len(reset_calls) == 1 and torch.equal(reset_calls[0], done_ids)
            resets += 1
            # the returned observation of a done row is the first one of its next episode
            assert torch.equal(obs_dict["obs"][done_ids], task._observe()[done_ids])
        else:
            assert reset_calls == []
        assert not torch.equal(prev_obs, obs_dict["obs"])
    assert resets > 0


# ---- task-specific physics --------------------------------------------------------------------------
def test_pendulum_matches_gymnasium_pendulum_v1():
    task = build("Pendulum", num_envs=8, seed=0)
    task.reset()
    ref = gym.make("Pendulum-v1").unwrapped
    ref.reset(seed=0)
    gen = torch.Generator().manual_seed(6)
    for _ in range(50):
        actions = random_actions(task, gen)
        th0, thdot0 = task.theta.clone(), task.theta_dot.clone()
        obs_dict, rew, _, _ = task.step(actions)
        for i in range(3):
            ref.state = np.array([float(th0[i]), float(thdot0[i])])
            ref_obs, ref_rew, *_ = ref.step(np.array([2.0 * float(actions[i, 0])], dtype=np.float32))
            assert rew[i].item() == pytest.approx(float(ref_rew), rel=1e-4, abs=1e-4)
            if task.progress_buf[i] != 0:  # not reset on this step
                assert obs_dict["obs"][i].numpy() == pytest.approx(ref_obs, abs=1e-4)


def test_acrobot_matches_gymnasium_acrobot_v1_dynamics():
    task = build("Acrobot", num_envs=8, seed=0)
    task.reset()
    ref = gym.make("Acrobot-v1").unwrapped
    ref.reset(seed=0)
    torques = torch.tensor([-1.0, 0.0, 1.0])
    gen = torch.Generator().manual_seed(7)
    for _ in range(40):
        choice = torch.randint(0, 3, (8,), generator=gen)
        before = task.state.clone().double().numpy()
        obs_dict, _, done, _ = task.step(torques[choice].unsqueeze(1))
        for i in range(4):
            ref.state = before[i].copy()
            ref_obs, *_ = ref.step(int(choice[i]))
            if not done[i]:
                assert obs_dict["obs"][i].numpy() == pytest.approx(ref_obs, abs=1e-3)


def test_acrobot_true_objective_is_success_of_the_finished_episode():
    task = build("Acrobot", num_envs=256, seed=0)
    task.reset()
    successes = timeouts = 0
    for _ in range(700):
        # an energy-pumping controller (torque along the second joint's velocity) reaches the height
        # in ~90 steps; rows where it is switched off time out
        pump = torch.sign(task.state[:, 3:4] + 1e-3)
        pump[: task.num_envs // 4] = 0.0
        _, rew, done, extras = task.step(pump)
        obj, d, to = extras["true_objective"], done.bool(), extras["time_outs"]
        assert ((obj == 0) | (obj == 1)).all()
        assert torch.equal(obj == 1, d & ~to)  # success <=> episode ended before the time limit
        assert (obj[~d] == 0).all()
        assert (rew[obj == 1] == 0).all()
        successes += int((obj == 1).sum())
        timeouts += int(to.sum())
    assert successes > 0 and timeouts > 0


def test_acrobot_rejects_unknown_reward_type():
    with pytest.raises(ConfigError, match="dense, sparse"):
        build("Acrobot", {"reward": "shaped"})


# ---- Gymnasium adapter ------------------------------------------------------------------------------
def test_gym_same_step_autoreset_returns_the_next_episodes_first_observation():
    task = build("Gym", {"id": "CartPole-v1"}, num_envs=32, seed=0)
    task.reset()
    gen = torch.Generator().manual_seed(8)
    finished = 0
    for _ in range(200):
        obs_dict, rew, done, _ = task.step(random_actions(task, gen))
        d = done.bool()
        # CartPole-v1 resets to U(-0.05, 0.05)^4: a done row already holds such a first observation
        assert (obs_dict["obs"][d].abs() <= 0.05).all()
        assert (rew == 1.0).all()  # next-step autoreset would show a reward-0 dummy step here
        finished += int(d.sum())
    assert finished > 20


def test_gym_reports_bad_ids_and_spaces_as_config_errors():
    with pytest.raises(ConfigError, match="Nope"):
        build("Gym", {"id": "Nope-v0"})
    with pytest.raises(ConfigError, match="task.env.id"):
        build("Gym", {})
    with pytest.raises(ConfigError, match="vectorization"):
        build("Gym", {"id": "Pendulum-v1", "vectorization": "threads"})


def test_gym_check_train_config_matches_action_type():
    from poptrain.tasks.gym_adapter import check_train_config

    check_train_config({"env": {"id": "CartPole-v1"}}, {"algo": {"name": "a2c_discrete"}})
    with pytest.raises(ConfigError, match="GymDiscretePPO"):
        check_train_config({"env": {"id": "CartPole-v1"}}, {"algo": {"name": "a2c_continuous"}})
    with pytest.raises(ConfigError, match="GymPPO"):
        check_train_config({"env": {"id": "Pendulum-v1"}}, {"algo": {"name": "a2c_discrete"}})


@pytest.mark.parametrize("name", [*TENSOR_TASKS, "Gym"])
def test_num_envs_must_be_positive(name):
    with pytest.raises(ConfigError, match="num_envs"):
        build(name, {"id": "Pendulum-v1"} if name == "Gym" else {}, num_envs=0)


def test_unknown_task_lists_known_names():
    with pytest.raises(ConfigError, match="Cartpole"):
        build("NoSuchTask")
