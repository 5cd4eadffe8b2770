"""Cartpole throughput at 1,024 and 4,096 envs, measured in one run:

(a) raw env-step + policy-inference rate (no learning),
(b) full training rate through poptrain + rl_games (frames / s, from just before the Runner is built),
(c) a minimal plain-torch PPO loop written here with the same batch (horizon x envs), network
    (MLP 32-32 elu, shared trunk, fixed log-std, input and value normalization), mini-epochs and minibatches,
and the ratio b / c (how much our glue + rl_games add over the PPO math itself).

    python benchmarks/throughput.py [--envs 1024 4096] [--epochs 60]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from poptrain.tasks import make_task

HORIZON, MINI_EPOCHS, MB_PER_ENV, GAMMA, TAU, E_CLIP, LR = 16, 8, 8, 0.99, 0.95, 0.2, 3e-4


class RunningNorm(nn.Module):
    """Running mean / variance normalization (updated once per batch)."""

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / total
        self.var.copy_((self.var * self.count + b_var * b_count + delta.square() * self.count * b_count / total) / total)
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-5)).clamp(-5, 5)


class ActorCritic(nn.Module):
    def __init__(self, num_obs: int, num_actions: int):
        super().__init__()
        self.obs_norm = RunningNorm(num_obs)
        self.value_norm = RunningNorm(1)
        self.trunk = nn.Sequential(nn.Linear(num_obs, 32), nn.ELU(), nn.Linear(32, 32), nn.ELU())
        self.mu = nn.Linear(32, num_actions)
        self.value = nn.Linear(32, 1)
        self.log_std = nn.Parameter(torch.zeros(num_actions))

    def forward(self, obs: torch.Tensor):
        h = self.trunk(self.obs_norm(obs))
        return self.mu(h), self.log_std.expand(obs.shape[0], -1), self.value(h)


def dist_log_prob(mu, log_std, a):
    return (-0.5 * ((a - mu) / log_std.exp()).square() - log_std - 0.9189385332046727).sum(-1)


def raw_rate(num_envs: int, steps: int) -> float:
    """(a) env.step + policy inference (sampling), no learning."""
    task, net = make_task("Cartpole", {"env": {}}, num_envs=num_envs), ActorCritic(4, 1)
    obs = task.reset()["obs"]
    with torch.no_grad():
        for i in range(steps + 20):
            if i == 20:
                t0 = time.perf_counter()
            mu, log_std, _ = net(obs)
            actions = mu + log_std.exp() * torch.randn_like(mu)
            obs = task.step(actions.clamp(-1, 1))[0]["obs"]
    return steps * num_envs / (time.perf_counter() - t0)


def plain_ppo_rate(num_envs: int, epochs: int) -> tuple[float, float]:
    """(c) minimal PPO: rollout -> GAE -> MINI_EPOCHS x minibatches of clipped-surrogate updates."""
    t_start = time.perf_counter()
    task, net = make_task("Cartpole", {"env": {}}, num_envs=num_envs), ActorCritic(4, 1)
    opt = torch.optim.Adam(net.parameters(), lr=LR, eps=1e-8)
    n, batch = num_envs, HORIZON * num_envs
    minibatch = MB_PER_ENV * num_envs
    obs = task.reset()["obs"].clone()
    buf_obs = torch.zeros(HORIZON, n, 4)
    buf_act, buf_logp = torch.zeros(HORIZON, n, 1), torch.zeros(HORIZON, n)
    buf_val, buf_rew, buf_done = torch.zeros(HORIZON, n), torch.zeros(HORIZON, n), torch.zeros(HORIZON, n)
    ep_ret, returns_done = torch.zeros(n), []
    for _ in range(epochs):
        # ---- rollout
        net.eval()
        with torch.no_grad():
            for t in range(HORIZON):
                mu, log_std, v = net(obs)
                a = mu + log_std.exp() * torch.randn_like(mu)
                buf_obs[t], buf_act[t], buf_logp[t] = obs, a, dist_log_prob(mu, log_std, a)
                buf_val[t] = v.squeeze(-1) * torch.sqrt(net.value_norm.var + 1e-5) + net.value_norm.mean
                obs_dict, rew, done, extras = task.step(a.clamp(-1, 1))
                obs = obs_dict["obs"].clone()
                shaped = 0.1 * rew + GAMMA * buf_val[t] * extras["time_outs"].float()
                buf_rew[t], buf_done[t] = shaped, done.float()
                ep_ret += rew
                if done.any():
                    returns_done.append(ep_ret[done.bool()].clone())
                    ep_ret[done.bool()] = 0
            _, _, last_v = net(obs)
            last_v = last_v.squeeze(-1) * torch.sqrt(net.value_norm.var + 1e-5) + net.value_norm.mean
            # ---- GAE
            adv = torch.zeros(HORIZON, n)
            gae = torch.zeros(n)
            for t in reversed(range(HORIZON)):
                next_v = last_v if t == HORIZON - 1 else buf_val[t + 1]
                not_done = 1.0 - buf_done[t]
                delta = buf_rew[t] + GAMMA * next_v * not_done - buf_val[t]
                gae = delta + GAMMA * TAU * not_done * gae
                adv[t] = gae
            ret = (adv + buf_val).reshape(-1)
        # ---- update
        net.train()
        flat_obs, flat_act = buf_obs.reshape(batch, 4), buf_act.reshape(batch, 1)
        flat_logp, flat_adv = buf_logp.reshape(-1), adv.reshape(-1)
        flat_val = buf_val.reshape(-1)
        net.obs_norm.update(flat_obs)
        net.value_norm.update(ret.unsqueeze(-1))
        vstd, vmean = torch.sqrt(net.value_norm.var + 1e-5), net.value_norm.mean
        ret_n, val_n = (ret - vmean) / vstd, (flat_val - vmean) / vstd
        for _ in range(MINI_EPOCHS):
            perm = torch.randperm(batch)
            for start in range(0, batch, minibatch):
                idx = perm[start:start + minibatch]
                mu, log_std, v = net(flat_obs[idx])
                logp = dist_log_prob(mu, log_std, flat_act[idx])
                a_mb = flat_adv[idx]
                a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                ratio = torch.exp(logp - flat_logp[idx])
                actor = torch.max(-a_mb * ratio, -a_mb * ratio.clamp(1 - E_CLIP, 1 + E_CLIP)).mean()
                v = v.squeeze(-1)
                v_clip = val_n[idx] + (v - val_n[idx]).clamp(-E_CLIP, E_CLIP)
                critic = torch.max((v - ret_n[idx]).square(), (v_clip - ret_n[idx]).square()).mean()
                bounds = (torch.relu(mu - 1.1).square() + torch.relu(-1.1 - mu).square()).sum(-1).mean()
                loss = actor + 0.5 * 4 * critic + 1e-4 * bounds
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
    elapsed = time.perf_counter() - t_start
    last = torch.cat(returns_done[-50:]).mean().item() if returns_done else float("nan")
    return epochs * batch / elapsed, last


def rl_games_rate(num_envs: int, epochs: int) -> tuple[float, float]:
    """(b) python -m poptrain.train task=Cartpole, in process: frames / s from just before the Runner."""
    import tempfile

    import rl_games.torch_runner  # noqa: F401  (import cost, ~5 s, is not part of the rate)
    from hydra import compose, initialize_config_dir

    from poptrain import rlg, train  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"num_envs={num_envs}", f"max_iterations={epochs}", f"train_dir={tmp}", "experiment=bench"]
        with initialize_config_dir(config_dir=str(train.CFG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        train.validate(cfg)
        train._setup_torch(cfg)
        stamp = _InitStamp()
        t0 = time.perf_counter()
        result = train.run_training(cfg, observers=[stamp])
        end = time.perf_counter()
    print(f"rl_games {num_envs} envs: Runner start -> agent built {stamp.t - t0:.2f} s, training {end - stamp.t:.2f} s")
    return result.frames / (end - t0), result.mean_reward


class _InitStamp:
    """Observer that records when rl_games finished building the agent (after_init)."""

    t = 0.0

    def after_init(self, algo) -> None:
        self.t = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in args.envs:
        a = raw_rate(n, steps=400)
        b, b_rew = rl_games_rate(n, args.epochs)
        torch.set_num_threads(1)  # rl_games sets the thread count from its config; keep both sides equal
        torch.manual_seed(0)
        c, c_rew = plain_ppo_rate(n, args.epochs)
        rows.append((n, a, b, c, b_rew, c_rew))
    print(f"\nthroughput (Cartpole, {args.epochs} epochs, horizon {HORIZON}, 1 torch thread)")
    print(f"{'envs':>6} {'(a) step+infer/s':>17} {'(b) rl_games/s':>15} {'(c) plain PPO/s':>16} {'b/c':>6}"
          f" {'rew b':>7} {'rew c':>7}")
    for n, a, b, c, b_rew, c_rew in rows:
        print(f"{n:>6} {a:>17,.0f} {b:>15,.0f} {c:>16,.0f} {b / c:>6.2f} {b_rew:>7.1f} {c_rew:>7.1f}")


if __name__ == "__main__":
    main()
