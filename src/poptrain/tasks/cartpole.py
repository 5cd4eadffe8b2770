"""Cartpole balance (IsaacGymEnvs-like): push a cart with a continuous force to keep the pole upright.

Observation ``[x, x_dot, theta, theta_dot]``; action: force in [-1, 1] times ``max_push_effort``.
Reward ``1 - w_angle theta^2 - w_cart_vel |x_dot| - w_pole_vel |theta_dot|`` (weights ``rewardAngle`` 1.0,
``rewardCartVel`` 0.01, ``rewardPoleVel`` 0.005), and ``reset_penalty`` on failure.
An episode ends when ``|x| > reset_dist``, ``|theta| > pi/2``, or after ``max_episode_length`` steps.
Target (documented in the README): mean episode return >= 400 (the maximum is ~500).

Live (may change while running, see ``VecTask.set_live``): ``maxEffort`` (recomputes the cached force
scale), ``resetDist``, ``resetPenalty``, ``dt`` and the three reward weights (read every step). Only
``maxEpisodeLength`` is structural. Mutating reward weights changes what the episode return measures: give
PBT an objective that does not depend on them when you do (``pbt.objective``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from poptrain.tasks.base import LiveParam, TaskSpec, VecTask


class Cartpole(VecTask):
    live_params = {
        "maxEffort": LiveParam("max_push_effort", recompute=True, min=0.0),
        "resetDist": LiveParam("reset_dist", min=0.0),
        "resetPenalty": LiveParam("reset_penalty"),
        "dt": LiveParam("dt", min=1e-6, max=1.0),
        "rewardAngle": LiveParam("w_angle"),
        "rewardCartVel": LiveParam("w_cart_vel"),
        "rewardPoleVel": LiveParam("w_pole_vel"),
    }

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        env = cfg.get("env", cfg)
        self.spec = TaskSpec(
            num_obs=4, num_actions=1, max_episode_length=int(env.get("maxEpisodeLength", 500))
        )
        self.reset_dist = float(env.get("resetDist", 3.0))
        self.max_push_effort = float(env.get("maxEffort", 10.0))
        self.dt = float(env.get("dt", 0.02))
        self.reset_penalty = float(env.get("resetPenalty", -2.0))
        self.w_angle = float(env.get("rewardAngle", 1.0))
        self.w_cart_vel = float(env.get("rewardCartVel", 0.01))
        self.w_pole_vel = float(env.get("rewardPoleVel", 0.005))
        self.gravity, self.mass_cart, self.mass_pole, self.half_length = 9.8, 1.0, 0.1, 0.5
        super().__init__(cfg, num_envs, device, seed)

    def _allocate_state(self) -> None:
        self.state = torch.zeros(self.num_envs, 4, device=self.device)
        # Reset draws: positions uniform in +-0.1, velocities uniform in +-0.25 (columns x, x_dot, theta, theta_dot).
        self._reset_scale = torch.tensor([0.2, 0.5, 0.2, 0.5], device=self.device)
        total_mass = self.mass_cart + self.mass_pole
        self._pml_over_m = self.mass_pole * self.half_length / total_mass
        self._one = torch.ones((), device=self.device)
        self._recompute_live()

    def _recompute_live(self) -> None:
        # force / total mass, once per change instead of a Python division per step
        self._force_scale = self.max_push_effort / (self.mass_cart + self.mass_pole)

    def _reset_rows(self, env_ids: torch.Tensor) -> None:
        k = env_ids.numel()
        positions, velocities = self.rand(k, 2), self.rand(k, 2)
        init = torch.stack((positions, velocities), dim=2).reshape(k, 4)  # x, x_dot, theta, theta_dot
        self.state.index_copy_(0, env_ids, init.sub_(0.5).mul_(self._reset_scale))

    def _physics_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Classic cart-pole dynamics (Barto, Sutton & Anderson 1983), semi-implicit Euler, updated in place.
        # Written with fused ops (addcmul, alpha=): each tensor op costs ~2 us of overhead on a CPU.
        x, x_dot, theta, theta_dot = self.state.unbind(1)  # views into self.state
        total_mass, pml_over_m = self.mass_cart + self.mass_pole, self._pml_over_m
        cos_t, sin_t = torch.cos(theta), torch.sin(theta)
        # temp = (force + m_p l theta_dot^2 sin) / M, with force = action * max_push_effort
        force_over_m = actions[:, 0] * self._force_scale
        temp = torch.addcmul(force_over_m, theta_dot.square(), sin_t, value=pml_over_m)
        # theta_acc = (g sin - cos temp) / (l (4/3 - m_p cos^2 / M))
        theta_acc = torch.addcmul(sin_t * self.gravity, cos_t, temp, value=-1.0)
        denominator = cos_t.square().mul_(-self.half_length * self.mass_pole / total_mass)
        theta_acc.div_(denominator.add_(self.half_length * 4.0 / 3.0))
        # x_acc = temp - m_p l theta_acc cos / M
        x_acc = torch.addcmul(temp, theta_acc, cos_t, value=-pml_over_m)
        x_dot.add_(x_acc, alpha=self.dt)
        theta_dot.add_(theta_acc, alpha=self.dt)
        x.add_(x_dot, alpha=self.dt)
        theta.add_(theta_dot, alpha=self.dt)

        # Reward and termination, as in IsaacGymEnvs' compute_cartpole_reward.
        reward = torch.addcmul(self._one, theta, theta, value=-self.w_angle)  # 1 - w theta^2
        reward.sub_(x_dot.abs(), alpha=self.w_cart_vel).sub_(theta_dot.abs(), alpha=self.w_pole_vel)
        failed = (x.abs() > self.reset_dist).logical_or_(theta.abs() > math.pi / 2)
        return reward.masked_fill_(failed, self.reset_penalty), failed

    def _observe(self) -> torch.Tensor:
        return self.state
