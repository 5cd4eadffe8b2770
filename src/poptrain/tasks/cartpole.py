"""Cartpole balance (IsaacGymEnvs-like): push a cart with a continuous force to keep the pole upright.

Observation ``[x, x_dot, theta, theta_dot]``; action: force in [-1, 1] times ``max_push_effort``.
Reward ``1 - theta^2 - 0.01 |x_dot| - 0.005 |theta_dot|``, and ``reset_penalty`` on failure.
An episode ends when ``|x| > reset_dist``, ``|theta| > pi/2``, or after ``max_episode_length`` steps.
Target (documented in the README): mean episode return >= 400 (the maximum is ~500).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from poptrain.tasks.base import TaskSpec, VecTask


class Cartpole(VecTask):
    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        env = cfg.get("env", cfg)
        self.spec = TaskSpec(num_obs=4, num_actions=1, max_episode_length=int(env.get("maxEpisodeLength", 500)))
        self.reset_dist = float(env.get("resetDist", 3.0))
        self.max_push_effort = float(env.get("maxEffort", 10.0))
        self.dt = float(env.get("dt", 0.02))
        self.reset_penalty = float(env.get("resetPenalty", -2.0))
        self.gravity, self.mass_cart, self.mass_pole, self.half_length = 9.8, 1.0, 0.1, 0.5
        super().__init__(cfg, num_envs, device, seed)

    def _allocate_state(self) -> None:
        self.state = torch.zeros(self.num_envs, 4, device=self.device)

    def _reset_rows(self, env_ids: torch.Tensor) -> None:
        k = env_ids.numel()
        init = torch.empty(k, 4, device=self.device)
        init[:, 0::2] = 0.2 * (self.rand(k, 2) - 0.5)  # positions
        init[:, 1::2] = 0.5 * (self.rand(k, 2) - 0.5)  # velocities
        self.state[env_ids] = init

    def _physics_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = self.state.unbind(1)
        force = actions[:, 0] * self.max_push_effort
        # Classic cart-pole dynamics (Barto, Sutton & Anderson 1983), semi-implicit Euler.
        total_mass = self.mass_cart + self.mass_pole
        pole_mass_length = self.mass_pole * self.half_length
        cos_t, sin_t = torch.cos(theta), torch.sin(theta)
        temp = (force + pole_mass_length * theta_dot.square() * sin_t) / total_mass
        theta_acc = (self.gravity * sin_t - cos_t * temp) / (
            self.half_length * (4.0 / 3.0 - self.mass_pole * cos_t.square() / total_mass)
        )
        x_acc = temp - pole_mass_length * theta_acc * cos_t / total_mass
        x_dot = x_dot + self.dt * x_acc
        theta_dot = theta_dot + self.dt * theta_acc
        x = x + self.dt * x_dot
        theta = theta + self.dt * theta_dot
        self.state = torch.stack((x, x_dot, theta, theta_dot), dim=1)

        # Reward and termination, as in IsaacGymEnvs' compute_cartpole_reward.
        reward = 1.0 - theta.square() - 0.01 * x_dot.abs() - 0.005 * theta_dot.abs()
        failed = (x.abs() > self.reset_dist) | (theta.abs() > math.pi / 2)
        reward = torch.where(failed, torch.full_like(reward, self.reset_penalty), reward)
        return reward, failed

    def _observe(self) -> torch.Tensor:
        return self.state
