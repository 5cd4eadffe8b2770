"""Pendulum swing-up (gymnasium ``Pendulum-v1`` dynamics on batched tensors).

A frictionless pendulum hangs from a motor; the policy applies a continuous torque to swing it up and
keep it upright. State ``(theta, theta_dot)`` with theta = 0 upright.

- Observation ``[cos theta, sin theta, theta_dot]``.
- Action in [-1, 1], times ``maxTorque`` (2.0, as in Pendulum-v1).
- Reward (dense cost) ``-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 torque^2)`` per step, in
  [-16.3, 0]; the three weights are ``costAngle``, ``costSpeed``, ``costTorque``.
- Dynamics (semi-implicit Euler, dt = 0.05): ``theta_dot += (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt``,
  clipped to [-8, 8]; ``theta += theta_dot dt``; g = 10, m = l = 1.
- Reset: theta ~ U(-pi, pi), theta_dot ~ U(-1, 1). No termination: every episode is a time-out after
  ``maxEpisodeLength`` (200) steps, so the PPO config bootstraps values at time-outs.

Live (may change while running, see ``VecTask.set_live``): ``maxTorque``, ``maxSpeed``, ``g``, ``dt`` and
the three cost weights (all read every step).

Target: mean episode return >= -200 (Pendulum-v1's usual "solved" band is -150 to -200; a random policy
scores about -1,200).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from poptrain.tasks.base import LiveParam, TaskSpec, VecTask


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [-pi, pi)."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(VecTask):
    live_params = {
        "maxTorque": LiveParam("max_torque", min=0.0),
        "maxSpeed": LiveParam("max_speed", min=0.0),
        "g": LiveParam("gravity"),
        "dt": LiveParam("dt", min=1e-6, max=1.0),
        "costAngle": LiveParam("cost_angle", min=0.0),
        "costSpeed": LiveParam("cost_speed", min=0.0),
        "costTorque": LiveParam("cost_torque", min=0.0),
    }

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        env = cfg.get("env", cfg)
        self.spec = TaskSpec(
            num_obs=3, num_actions=1, max_episode_length=int(env.get("maxEpisodeLength", 200))
        )
        self.max_torque = float(env.get("maxTorque", 2.0))
        self.max_speed = float(env.get("maxSpeed", 8.0))
        self.dt = float(env.get("dt", 0.05))
        self.gravity = float(env.get("g", 10.0))
        self.mass, self.length = 1.0, 1.0
        self.cost_angle = float(env.get("costAngle", 1.0))
        self.cost_speed = float(env.get("costSpeed", 0.1))
        self.cost_torque = float(env.get("costTorque", 0.001))
        super().__init__(cfg, num_envs, device, seed)

    def _allocate_state(self) -> None:
        self.theta = torch.zeros(self.num_envs, device=self.device)
        self.theta_dot = torch.zeros(self.num_envs, device=self.device)

    def _reset_rows(self, env_ids: torch.Tensor) -> None:
        k = env_ids.numel()
        self.theta[env_ids] = (2 * self.rand(k) - 1) * math.pi
        self.theta_dot[env_ids] = 2 * self.rand(k) - 1

    def _physics_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = actions[:, 0] * self.max_torque
        th, thdot = self.theta, self.theta_dot
        # Cost on the state *before* the step, exactly as Pendulum-v1.
        cost = (
            self.cost_angle * angle_normalize(th).square()
            + self.cost_speed * thdot.square()
            + self.cost_torque * u.square()
        )
        g, m, length = self.gravity, self.mass, self.length
        new_thdot = thdot + (3 * g / (2 * length) * torch.sin(th) + 3.0 / (m * length**2) * u) * self.dt
        new_thdot = new_thdot.clamp(-self.max_speed, self.max_speed)
        self.theta = th + new_thdot * self.dt
        self.theta_dot = new_thdot
        return -cost, torch.zeros_like(cost, dtype=torch.bool)

    def _observe(self) -> torch.Tensor:
        return torch.stack((torch.cos(self.theta), torch.sin(self.theta), self.theta_dot), dim=1)
