"""Cartpole training throughput: poptrain + rl_games against the same PPO math in plain torch.

At each env count (default 1,024 and 4,096), in one process, this prints:

(a)  raw env-step + policy-inference rate (no learning, no bookkeeping);
(b)  full training rate through poptrain + rl_games (``poptrain.train.run_training``, the code path of
     ``python -m poptrain.train task=Cartpole``), cfg/train/CartpolePPO.yaml unchanged;
(c)  a minimal plain-torch PPO loop written below (``ppo_rlg_math``) that computes the same PPO math
     rl_games 1.6.5 computes with CartpolePPO.yaml (a2c_continuous.py, a2c_common.py, models.py);
(c0) the earlier, lighter plain loop (``ppo_light``), kept as a second baseline;
and the ratios b/c and b/c0. Goal: b/c >= 0.9 at 4,096 envs.

Both plain loops read horizon, minibatch size, mini-epochs, gamma, tau, e_clip, learning rate, coefficients
and grad norm from the same composed CartpolePPO.yaml, use the same network (MLP 32-32 elu, shared
actor-critic trunk, mu and value heads, state-independent log-std parameter starting at 0), our Cartpole
task on the same device, Adam(eps=1e-8) and one torch thread (checked and printed).

Feature                                     (b) rl_games   (c) ppo_rlg_math        (c0) ppo_light
obs normalization (running mean/std)        yes            yes, like (b)           yes
  updated                                   every minibatch of every mini-epoch    once per batch
                                            (train mode; rl_games' set_train() re-enables it each minibatch)
  stats dtype / clamp                       float64, +-5   float64, +-5            float32, +-5
value normalization                         yes            yes, like (b)           yes
  updated                                   twice per batch (values, then returns) once (returns)
  rollout values de-normalized with clamp   yes            yes                     no clamp
reward scale 0.1 + time-out bootstrap       yes            yes                     yes
GAE (gamma 0.99, tau 0.95)                  yes            yes                     yes
advantage normalization                     whole batch    whole batch             per minibatch
minibatch order                             contiguous env-major slices, no shuffle  random permutation
clipped surrogate, clipped value loss       yes            yes                     yes
bounds loss (soft bound 1.1, coef 1e-4)     yes            yes                     yes
entropy term (coef 0, still computed)       yes            yes                     no
critic_coef 4 (x0.5), grad-norm clip 1.0    yes            yes                     yes
adaptive KL lr schedule (legacy: KL vs the  yes            yes (KL + .item() per   no (fixed lr)
  previous pass' mu/sigma, per minibatch)                  minibatch)
Adam fused=True                             yes            yes                     no (default)
episode-return tracking per step            3 AverageMeters, nonzero + gathers,     sums, no sync;
                                            observer dispatch; (c): sums, no sync   (c0): .any() sync
per-epoch logging / checkpoints             TensorBoard scalars, stdout line, .pth   none

Allocator: poptrain.allocator.tune_allocator() (glibc mallopt: freed tensor memory stays in the heap) is what
``python -m poptrain.train`` applies at start; this script applies it once before any run, so (a), (b), (c)
and (c0) all run with it. ``--no-malloc-tuning`` runs everything with glibc's defaults instead (the state
before that change: (b) then page-faults its batch buffers every epoch).

Measurement (fair and robust): every run builds its task/agent before the clock starts and stamps the time
at the end of every epoch ((b): rl_games' ``after_print_stats`` observer hook, which fires once per epoch
after the update); the rate counts only the epochs after ``--warmup``, so imports, Runner/agent creation
and warm-up are excluded and (b), (c) and (c0) cover the same frames. The three runs alternate within each
of ``--rounds`` rounds (order rotated per round) so background load hits all of them alike; the table shows
medians over rounds, and the ratio columns are medians of per-round ratios.

    python benchmarks/throughput.py [--envs 1024 4096] [--epochs 40] [--warmup 5] [--rounds 3] [--no-malloc-tuning]
    python benchmarks/throughput.py --device cuda --envs 4096 16384 65536 --json rows.json    # on a GPU

``--device cuda``: (b) trains with ``rl_device=cuda sim_device=cuda``; (a), (c) and (c0) build every tensor
inside ``with torch.device("cuda")``; every time stamp waits for the GPU first (torch.cuda.synchronize), so an
epoch's time includes its queued kernels. The CPU-time column then counts only the host side.

Mean returns printed for orientation are different statistics: (b) rl_games' game_rewards meter (last <= 100
finished episodes), (c) episodes finished in the last epoch, (c0) the last 50 steps with finished episodes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from poptrain.tasks import make_task

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
DEVICE = "cpu"  # --device: where every run's task, network and buffers live


# ---- settings shared by every loop -------------------------------------------------------------------
@dataclass(frozen=True)
class PpoSettings:
    """The PPO numbers of the composed CartpolePPO.yaml, used by both plain loops."""

    num_envs: int  # rows of the task
    horizon: int  # env steps per env per epoch (horizon_length)
    minibatch: int  # rows per minibatch (minibatch_size_per_env x num_envs)
    mini_epochs: int  # passes over the batch per epoch
    gamma: float  # discount
    tau: float  # GAE lambda
    e_clip: float  # PPO ratio clip, also the value clip (clip_value)
    lr: float  # initial learning rate (then adapted by the KL schedule)
    kl_threshold: float  # target KL of the adaptive schedule
    critic_coef: float  # value-loss weight (rl_games multiplies it by 0.5)
    entropy_coef: float  # entropy bonus weight
    bounds_coef: float  # weight of the soft action-bound loss
    grad_norm: float  # global grad-norm clip
    reward_scale: float  # reward_shaper.scale_value
    units: tuple[int, ...]  # MLP hidden sizes

    @property
    def batch(self) -> int:
        return self.horizon * self.num_envs

    @classmethod
    def from_params(cls, params: dict[str, Any], num_envs: int) -> PpoSettings:
        conf = params["config"]
        expected = {
            "lr_schedule": "adaptive",
            "normalize_input": True,
            "normalize_value": True,
            "normalize_advantage": True,
            "clip_value": True,
            "truncate_grads": True,
            "ppo": True,
        }
        for key, value in expected.items():
            if conf.get(key) != value:
                raise SystemExit(
                    f"the plain loops assume {key}={value!r}; CartpolePPO.yaml has {conf.get(key)!r}"
                )
        return cls(
            num_envs=num_envs,
            horizon=int(conf["horizon_length"]),
            minibatch=int(conf["minibatch_size_per_env"]) * num_envs,
            mini_epochs=int(conf["mini_epochs"]),
            gamma=float(conf["gamma"]),
            tau=float(conf["tau"]),
            e_clip=float(conf["e_clip"]),
            lr=float(conf["learning_rate"]),
            kl_threshold=float(conf["kl_threshold"]),
            critic_coef=float(conf["critic_coef"]),
            entropy_coef=float(conf["entropy_coef"]),
            bounds_coef=float(conf["bounds_loss_coef"]),
            grad_norm=float(conf["grad_norm"]),
            reward_scale=float(conf["reward_shaper"]["scale_value"]),
            units=tuple(int(u) for u in params["network"]["mlp"]["units"]),
        )


@dataclass
class Measurement:
    """Per-epoch end times of one training run."""

    stamps: list[tuple[float, float]]  # (wall, process CPU) time at the end of every epoch
    frames_per_epoch: int  # env steps per epoch (horizon x envs)
    mean_return: float  # mean episode return at the end (a sanity check that the loop learns)
    threads: int  # torch.get_num_threads() inside the run
    phases: list[tuple[float, float]] = field(default_factory=list)  # per epoch: CPU s in rollout, in update

    def breakdown(self, warmup: int) -> tuple[float, float, float]:
        """Mean CPU ms per epoch after warm-up: rollout (incl. GAE), minibatch updates, everything else."""
        epochs = len(self.stamps) - warmup
        total = (self.stamps[-1][1] - self.stamps[warmup - 1][1]) / epochs
        rollout = sum(p[0] for p in self.phases[warmup:]) / epochs
        update = sum(p[1] for p in self.phases[warmup:]) / epochs
        return 1e3 * rollout, 1e3 * update, 1e3 * (total - rollout - update)

    def rate(self, warmup: int, clock: int = 0) -> float:
        """Frames per second (clock 0: wall, 1: process CPU) over the epochs after the first ``warmup``."""
        if len(self.stamps) <= warmup or warmup < 1:
            raise SystemExit(f"need 1 <= --warmup < epochs, got warmup={warmup}, epochs={len(self.stamps)}")
        epochs = len(self.stamps) - warmup
        return epochs * self.frames_per_epoch / (self.stamps[-1][clock] - self.stamps[warmup - 1][clock])


def now() -> tuple[float, float]:
    """(wall, process CPU) seconds. CPU time is what other jobs on a loaded machine disturb least.

    On CUDA it first waits for the queued kernels: without that a stamp would time the launches, not the work."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def cartpole(num_envs: int, seed: int = 42):
    return make_task("Cartpole", {"env": {}}, num_envs=num_envs, device=DEVICE, seed=seed)


# ---- the network and normalizer both plain loops share ---------------------------------------------
class ActorCritic(nn.Module):
    """rl_games' actor_critic with separate: False: MLP trunk -> mu head and value head; fixed log-std."""

    def __init__(self, num_obs: int, num_actions: int, units: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        size = num_obs
        for width in units:
            layers += [nn.Linear(size, width), nn.ELU()]
            size = width
        self.trunk = nn.Sequential(*layers)
        self.mu = nn.Linear(size, num_actions)
        self.value = nn.Linear(size, 1)
        self.log_std = nn.Parameter(torch.zeros(num_actions))
        for module in self.modules():  # rl_games' 'default' initializer: torch's weights, zero biases
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, obs_normalized: torch.Tensor):
        hidden = self.trunk(obs_normalized)
        mu = self.mu(hidden)
        return mu, self.log_std.expand_as(mu), self.value(hidden)


class RunningMeanStd(nn.Module):
    """Running mean / variance like rl_games' RunningMeanStd: float64 stats, count starts at 1."""

    def __init__(self, size: int, epsilon: float = 1e-5):
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.ones((), dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        self.var = (
            self.var * self.count
            + batch_var * batch_count
            + delta.square() * self.count * batch_count / total
        ) / total
        self.count = total

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean.float()) / torch.sqrt(self.var.float() + self.epsilon)).clamp(-5.0, 5.0)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.var.float() + self.epsilon) * y.clamp(-5.0, 5.0) + self.mean.float()


def neg_log_prob(action: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, log_std: torch.Tensor):
    """-log N(action; mu, sigma), summed over action dims."""
    return (0.5 * ((action - mu) / sigma).square() + log_std).sum(-1) + LOG_SQRT_2PI * action.shape[-1]


def env_major(x: torch.Tensor) -> torch.Tensor:
    """[horizon, envs, ...] -> [envs * horizon, ...] (rl_games' swap_and_flatten01)."""
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


# ---- (c): the PPO math of rl_games a2c_continuous, written out -----------------------------------------
def ppo_rlg_math(s: PpoSettings, epochs: int, seed: int = 0) -> Measurement:
    """rl_games' continuous PPO, step by step, with none of its bookkeeping (see the module docstring)."""
    torch.manual_seed(seed)
    task = cartpole(s.num_envs)
    n, num_obs, num_act = s.num_envs, task.spec.num_obs, task.spec.num_actions
    net = ActorCritic(num_obs, num_act, s.units)
    obs_rms, value_rms = RunningMeanStd(num_obs), RunningMeanStd(1)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, eps=1e-8, fused=True)
    lr = s.lr

    H = s.horizon
    buf_obs = torch.zeros(H, n, num_obs)
    buf_action, buf_mu, buf_sigma = (
        torch.zeros(H, n, num_act),
        torch.zeros(H, n, num_act),
        torch.zeros(H, n, num_act),
    )
    buf_neglogp, buf_first = torch.zeros(H, n), torch.zeros(H, n)
    buf_value, buf_reward = torch.zeros(H, n, 1), torch.zeros(H, n, 1)
    ep_return = torch.zeros(n)
    obs = task.reset()["obs"]
    done = torch.ones(n)  # rl_games starts with dones = 1
    stamps: list[tuple[float, float]] = []
    finished_sum = finished_count = torch.zeros(())

    phases: list[tuple[float, float]] = []
    for _ in range(epochs):
        # ---- rollout: sample from the policy, normalizers frozen (eval mode)
        t_rollout = time.process_time()
        finished_sum, finished_count = torch.zeros(()), torch.zeros(())
        with torch.no_grad():
            for t in range(H):
                mu, log_std, value_normalized = net(obs_rms.normalize(obs))
                sigma = log_std.exp()
                action = mu + sigma * torch.randn_like(mu)
                value = value_rms.denormalize(value_normalized)
                buf_obs[t], buf_first[t], buf_action[t] = obs, done, action
                buf_neglogp[t], buf_value[t] = neg_log_prob(action, mu, sigma, log_std), value
                buf_mu[t], buf_sigma[t] = mu, sigma

                obs_dict, reward, done, extras = task.step(action.clamp(-1.0, 1.0))
                obs = obs_dict["obs"]
                time_out = extras["time_outs"].unsqueeze(1).float()
                buf_reward[t] = s.reward_scale * reward.unsqueeze(1) + s.gamma * value * time_out

                ep_return += reward
                done_f = done.float()
                finished_sum = finished_sum + (ep_return * done_f).sum()
                finished_count = finished_count + done_f.sum()
                ep_return *= 1.0 - done_f

            # ---- GAE(gamma, tau) on de-normalized values
            _, _, last_value_normalized = net(obs_rms.normalize(obs))
            next_value = value_rms.denormalize(last_value_normalized)
            next_nonterminal = 1.0 - done.float().unsqueeze(1)
            advantage = torch.zeros_like(buf_reward)
            last_gae = torch.zeros(n, 1)
            for t in reversed(range(H)):
                delta = buf_reward[t] + s.gamma * next_value * next_nonterminal - buf_value[t]
                last_gae = delta + s.gamma * s.tau * next_nonterminal * last_gae
                advantage[t] = last_gae
                next_value, next_nonterminal = buf_value[t], 1.0 - buf_first[t].unsqueeze(1)
            returns = advantage + buf_value
        t_rollout = time.process_time() - t_rollout

        # ---- batch: env-major flatten, value normalization (stats updated by values, then returns)
        b_obs, b_action, b_neglogp = env_major(buf_obs), env_major(buf_action), env_major(buf_neglogp)
        b_mu, b_sigma = env_major(buf_mu), env_major(buf_sigma)
        b_value, b_return = env_major(buf_value), env_major(returns)
        b_advantage = (b_return - b_value).sum(1)
        value_rms.update(b_value)
        b_value = value_rms.normalize(b_value)
        value_rms.update(b_return)
        b_return = value_rms.normalize(b_return)
        b_advantage = (b_advantage - b_advantage.mean()) / (b_advantage.std() + 1e-8)

        # ---- update: mini-epochs x contiguous minibatches; obs stats updated on every minibatch
        t_update = time.process_time()
        for _ in range(s.mini_epochs):
            for start in range(0, s.batch, s.minibatch):
                mb = slice(start, start + s.minibatch)
                obs_mb = b_obs[mb]
                with torch.no_grad():
                    obs_rms.update(obs_mb)
                    obs_mb = obs_rms.normalize(obs_mb)
                mu, log_std, value = net(obs_mb)
                sigma = log_std.exp()
                neglogp = neg_log_prob(b_action[mb], mu, sigma, log_std)
                entropy = (0.5 + LOG_SQRT_2PI + log_std).sum(-1)

                ratio = torch.exp(b_neglogp[mb] - neglogp)
                adv = b_advantage[mb]
                actor_loss = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1.0 - s.e_clip, 1.0 + s.e_clip)
                ).mean()
                old_value = b_value[mb]
                value_clipped = old_value + (value - old_value).clamp(-s.e_clip, s.e_clip)
                critic_loss = torch.max(
                    (value - b_return[mb]).square(), (value_clipped - b_return[mb]).square()
                ).mean()
                bounds_loss = (
                    ((mu - 1.1).clamp_min(0.0).square() + (mu + 1.1).clamp_max(0.0).square()).sum(-1).mean()
                )
                loss = (
                    actor_loss
                    + 0.5 * s.critic_coef * critic_loss
                    - s.entropy_coef * entropy.mean()
                    + s.bounds_coef * bounds_loss
                )

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), s.grad_norm)
                optimizer.step()

                # ---- adaptive lr (rl_games' 'legacy' schedule): KL against the previous pass, every minibatch
                with torch.no_grad():
                    mu, sigma = mu.detach(), sigma.detach()
                    old_mu, old_sigma = b_mu[mb], b_sigma[mb]
                    kl = (
                        (
                            torch.log(old_sigma / sigma + 1e-5)
                            + (sigma.square() + (old_mu - mu).square()) / (2.0 * (old_sigma.square() + 1e-5))
                            - 0.5
                        )
                        .sum(-1)
                        .mean()
                    )
                    b_mu[mb], b_sigma[mb] = mu, sigma
                kl_value = kl.item()
                if kl_value > 2.0 * s.kl_threshold:
                    lr = max(lr / 1.5, 1e-6)
                elif kl_value < 0.5 * s.kl_threshold:
                    lr = min(lr * 1.5, 1e-2)
                for group in optimizer.param_groups:
                    group["lr"] = lr
        phases.append((t_rollout, time.process_time() - t_update))
        stamps.append(now())

    mean_return = (finished_sum / finished_count.clamp_min(1)).item()
    return Measurement(stamps, s.batch, mean_return, torch.get_num_threads(), phases)


# ---- (c0): the earlier, lighter plain loop ------------------------------------------------------------
class _LightNorm(nn.Module):
    """float32 running mean / variance (updated once per batch)."""

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / total
        self.var.copy_(
            (self.var * self.count + b_var * b_count + delta.square() * self.count * b_count / total) / total
        )
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-5)).clamp(-5, 5)


def ppo_light(s: PpoSettings, epochs: int, seed: int = 0) -> Measurement:
    """(c0) lighter PPO: normalizers once per batch, per-minibatch advantage normalization, fixed lr."""
    torch.manual_seed(seed)
    task = cartpole(s.num_envs)
    net = ActorCritic(4, 1, s.units)
    obs_norm, value_norm = _LightNorm(4), _LightNorm(1)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr, eps=1e-8)
    n, H, batch = s.num_envs, s.horizon, s.batch
    obs = task.reset()["obs"].clone()
    buf_obs = torch.zeros(H, n, 4)
    buf_act, buf_logp = torch.zeros(H, n, 1), torch.zeros(H, n)
    buf_val, buf_rew, buf_done = torch.zeros(H, n), torch.zeros(H, n), torch.zeros(H, n)
    ep_ret, returns_done = torch.zeros(n), []
    stamps: list[tuple[float, float]] = []
    for _ in range(epochs):
        # ---- rollout
        with torch.no_grad():
            for t in range(H):
                mu, log_std, v = net(obs_norm(obs))
                a = mu + log_std.exp() * torch.randn_like(mu)
                buf_obs[t], buf_act[t] = obs, a
                buf_logp[t] = -neg_log_prob(a, mu, log_std.exp(), log_std)
                buf_val[t] = v.squeeze(-1) * torch.sqrt(value_norm.var + 1e-5) + value_norm.mean
                obs_dict, rew, done, extras = task.step(a.clamp(-1, 1))
                obs = obs_dict["obs"].clone()
                buf_rew[t] = s.reward_scale * rew + s.gamma * buf_val[t] * extras["time_outs"].float()
                buf_done[t] = done.float()
                ep_ret += rew
                if done.any():
                    returns_done.append(ep_ret[done.bool()].clone())
                    ep_ret[done.bool()] = 0
            _, _, last_v = net(obs_norm(obs))
            last_v = last_v.squeeze(-1) * torch.sqrt(value_norm.var + 1e-5) + value_norm.mean
            # ---- GAE
            adv = torch.zeros(H, n)
            gae = torch.zeros(n)
            for t in reversed(range(H)):
                next_v = last_v if t == H - 1 else buf_val[t + 1]
                not_done = 1.0 - buf_done[t]
                delta = buf_rew[t] + s.gamma * next_v * not_done - buf_val[t]
                gae = delta + s.gamma * s.tau * not_done * gae
                adv[t] = gae
            ret = (adv + buf_val).reshape(-1)
        # ---- update
        flat_obs, flat_act = buf_obs.reshape(batch, 4), buf_act.reshape(batch, 1)
        flat_logp, flat_adv, flat_val = buf_logp.reshape(-1), adv.reshape(-1), buf_val.reshape(-1)
        obs_norm.update(flat_obs)
        value_norm.update(ret.unsqueeze(-1))
        vstd, vmean = torch.sqrt(value_norm.var + 1e-5), value_norm.mean
        ret_n, val_n = (ret - vmean) / vstd, (flat_val - vmean) / vstd
        for _ in range(s.mini_epochs):
            perm = torch.randperm(batch)
            for start in range(0, batch, s.minibatch):
                idx = perm[start : start + s.minibatch]
                mu, log_std, v = net(obs_norm(flat_obs[idx]))
                logp = -neg_log_prob(flat_act[idx], mu, log_std.exp(), log_std)
                a_mb = flat_adv[idx]
                a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                ratio = torch.exp(logp - flat_logp[idx])
                actor = torch.max(-a_mb * ratio, -a_mb * ratio.clamp(1 - s.e_clip, 1 + s.e_clip)).mean()
                v = v.squeeze(-1)
                v_clip = val_n[idx] + (v - val_n[idx]).clamp(-s.e_clip, s.e_clip)
                critic = torch.max((v - ret_n[idx]).square(), (v_clip - ret_n[idx]).square()).mean()
                bounds = (torch.relu(mu - 1.1).square() + torch.relu(-1.1 - mu).square()).sum(-1).mean()
                loss = actor + 0.5 * s.critic_coef * critic + s.bounds_coef * bounds
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), s.grad_norm)
                opt.step()
        stamps.append(now())
    last = torch.cat(returns_done[-50:]).mean().item() if returns_done else float("nan")
    return Measurement(stamps, batch, last, torch.get_num_threads())


# ---- (a) and (b) -----------------------------------------------------------------------------------
def raw_rate(s: PpoSettings, steps: int = 400) -> float:
    """(a) env.step + policy inference (sampling), no learning."""
    task, net, obs_rms = cartpole(s.num_envs), ActorCritic(4, 1, s.units), RunningMeanStd(4)
    obs = task.reset()["obs"]
    with torch.no_grad():
        for i in range(steps + 20):
            if i == 20:
                t0 = now()[0]
            mu, log_std, _ = net(obs_rms.normalize(obs))
            actions = mu + log_std.exp() * torch.randn_like(mu)
            obs = task.step(actions.clamp(-1, 1))[0]["obs"]
    return steps * s.num_envs / (now()[0] - t0)


class _EpochStamps:
    """rl_games observer: the time at the end of every epoch (after_print_stats fires once per epoch).

    For the per-phase breakdown it also wraps the agent's ``play_steps`` (rollout + GAE) and
    ``train_actor_critic`` (one minibatch update) on the instance; rl_games itself is not modified.
    """

    def __init__(self) -> None:
        self.stamps: list[tuple[float, float]] = []
        self.phases: list[tuple[float, float]] = []
        self.threads = 0
        self._rollout = self._update = 0.0

    def after_init(self, algo: Any) -> None:
        play_steps, train_actor_critic = algo.play_steps, algo.train_actor_critic

        def timed_play_steps():
            t0 = time.process_time()
            result = play_steps()
            self._rollout += time.process_time() - t0
            return result

        def timed_train_actor_critic(input_dict):
            t0 = time.process_time()
            result = train_actor_critic(input_dict)
            self._update += time.process_time() - t0
            return result

        algo.play_steps, algo.train_actor_critic = timed_play_steps, timed_train_actor_critic

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        self.stamps.append(now())
        self.phases.append((self._rollout, self._update))
        self._rollout = self._update = 0.0
        self.threads = torch.get_num_threads()


def compose_cfg(num_envs: int, epochs: int, train_dir: str):
    from poptrain.config import compose

    overrides = [
        f"num_envs={num_envs}",
        f"max_iterations={epochs}",
        f"train_dir={train_dir}",
        "experiment=bench",
        f"rl_device={DEVICE}",
        f"sim_device={DEVICE}",
    ]
    return compose(*overrides)  # as python -m poptrain.train composes and checks it


def rl_games_run(num_envs: int, epochs: int) -> Measurement:
    """(b) poptrain.train.run_training (Runner + rl_games agent + our task), stdout discarded."""
    from poptrain import train
    from poptrain.build import setup_torch

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(num_envs, epochs, tmp)
        setup_torch(cfg)
        stamps = _EpochStamps()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            result = train.run_training(cfg, observers=[stamps])
    horizon = int(cfg.train.params.config.horizon_length)
    return Measurement(stamps.stamps, horizon * num_envs, result.mean_reward, stamps.threads, stamps.phases)


# ---- main ---------------------------------------------------------------------------------------------
CLOCKS = ("wall", "cpu")


def measure(num_envs: int, epochs: int, warmup: int, rounds: int) -> dict[str, Any]:
    """Alternate (b), (c), (c0) ``rounds`` times (order rotated each round); medians of rates and ratios."""
    from omegaconf import OmegaConf

    with tempfile.TemporaryDirectory() as tmp:
        params = OmegaConf.to_container(compose_cfg(num_envs, epochs, tmp).train.params, resolve=True)
    assert isinstance(params, dict)
    s = PpoSettings.from_params(params, num_envs)

    def on_device(run: Callable[[], Measurement]) -> Callable[[], Measurement]:
        def inside() -> Measurement:
            with torch.device(DEVICE):  # the plain loops' factory calls (zeros, randperm, ...) land on DEVICE
                return run()

        return inside

    runs: dict[str, Callable[[], Measurement]] = {
        "b": lambda: rl_games_run(num_envs, epochs),
        "c": on_device(lambda: ppo_rlg_math(s, epochs)),
        "c0": on_device(lambda: ppo_light(s, epochs)),
    }
    order = list(runs)
    done: dict[str, list[Measurement]] = {k: [] for k in runs}
    raw = []
    for r in range(rounds):
        torch.set_num_threads(1)
        with torch.device(DEVICE):
            raw.append(raw_rate(s))
        for key in order[r % 3 :] + order[: r % 3]:
            torch.set_num_threads(
                1
            )  # rl_games sets it from its config (num_threads=1); keep both sides equal
            m = runs[key]()
            done[key].append(m)
            print(
                f"  envs {num_envs} round {r + 1}: ({key}) {m.rate(warmup):,.0f} frames/s wall, "
                f"{m.rate(warmup, 1):,.0f} per CPU-s, mean return {m.mean_return:.1f}, threads {m.threads}",
                flush=True,
            )
    row: dict[str, Any] = {"envs": num_envs, "a": statistics.median(raw)}
    for clock, name in enumerate(CLOCKS):
        rates = {k: [m.rate(warmup, clock) for m in ms] for k, ms in done.items()}
        ratio = [b / c for b, c in zip(rates["b"], rates["c"], strict=True)]
        ratio0 = [b / c for b, c in zip(rates["b"], rates["c0"], strict=True)]
        row[name] = {
            **{k: statistics.median(v) for k, v in rates.items()},
            "b/c": statistics.median(ratio),
            "b/c range": (min(ratio), max(ratio)),
            "b/c0": statistics.median(ratio0),
        }
    row["phases"] = {
        k: [statistics.median(m.breakdown(warmup)[i] for m in done[k]) for i in range(3)] for k in ("b", "c")
    }
    row["returns"] = {k: statistics.median(m.mean_return for m in ms) for k, ms in done.items()}
    row["threads"] = sorted({m.threads for ms in done.values() for m in ms})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument(
        "--epochs", type=int, default=40, help="epochs per run (rate counts those after --warmup)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="leading epochs excluded from the rate")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating (b)/(c)/(c0) rounds; medians reported"
    )
    parser.add_argument("--no-malloc-tuning", action="store_true", help="glibc malloc defaults for every run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (every run, both sides)")
    parser.add_argument("--json", default="", help="also write the table's rows to this file")
    args = parser.parse_args()
    global DEVICE
    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        parser.error(f"--device {args.device!r}: valid: cpu, or cuda[:N] where torch sees a GPU")
    DEVICE = args.device
    if args.no_malloc_tuning:
        os.environ["POPTRAIN_MALLOC_TUNING"] = "0"  # also read by build.setup_torch inside (b)
    from poptrain.allocator import tune_allocator

    tuned = tune_allocator()
    import rl_games.torch_runner  # noqa: F401  (import once, outside any timed region)

    rows = [measure(n, args.epochs, args.warmup, args.rounds) for n in args.envs]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": DEVICE,
                    "epochs": args.epochs,
                    "warmup": args.warmup,
                    "rounds": args.rounds,
                    "rows": rows,
                },
                f,
                indent=1,
            )
    print(
        f"\nthroughput (Cartpole on {DEVICE}; medians of {args.rounds} alternating rounds; {args.epochs} epochs per run, "
        f"the first {args.warmup} excluded as warm-up)"
    )
    print(f"malloc tuning (poptrain.allocator.tune_allocator) {'on' if tuned else 'off'} for every run")
    print(
        "wall: frames per wall-clock second; cpu: frames per second of this process' CPU time "
        "(less disturbed by other jobs)"
    )
    print(
        f"{'envs':>6} {'clock':>5} {'(a) step+infer':>15} {'(b) rl_games':>13} {'(c) same math':>14} "
        f"{'(c0) light':>11} {'b/c':>5} {'b/c min-max':>12} {'b/c0':>5}"
    )
    for row in rows:
        for name in CLOCKS:
            r = row[name]
            lo, hi = r["b/c range"]
            a = f"{row['a']:,.0f}" if name == "wall" else ""
            print(
                f"{row['envs']:>6} {name:>5} {a:>15} {r['b']:>13,.0f} {r['c']:>14,.0f} {r['c0']:>11,.0f} "
                f"{r['b/c']:>5.2f} {lo:>5.2f}-{hi:<6.2f} {r['b/c0']:>5.2f}"
            )
        ret = row["returns"]
        print(
            f"{'':>6} torch threads {row['threads']}; mean return at the end b/c/c0: "
            f"{ret['b']:.0f}/{ret['c']:.0f}/{ret['c0']:.0f}"
        )
        (rb, ub, ob), (rc, uc, oc) = row["phases"]["b"], row["phases"]["c"]
        print(
            f"{'':>6} CPU ms per epoch, (b) vs (c): rollout+GAE {rb:.1f} vs {rc:.1f}, "
            f"minibatch updates {ub:.1f} vs {uc:.1f}, rest (batch prep, logging, checkpoints) {ob:.1f} vs {oc:.1f}"
        )


if __name__ == "__main__":
    main()
