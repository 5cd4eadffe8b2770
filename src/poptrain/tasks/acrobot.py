"""Acrobot swing-up (continuous torque): the PBT showcase task, where hyperparameters clearly matter.

Two links hang from a fixed pivot; only the joint between them is actuated (underactuated). The policy
must pump energy into the chain until the tip rises above ``successHeight`` (1.0 = one link length above
the pivot; the tip's range is [-2, 2]). Dynamics, constants and integration (RK4, dt = 0.2, velocity limits
4 pi and 9 pi) follow gymnasium's ``Acrobot-v1`` ("book" equations), but the torque is continuous.

- Observation ``[cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot]``.
- Action in [-1, 1], times ``maxTorque`` (1.0), on the second joint.
- Reward: ``-1`` per step until success (sparse, as in Acrobot-v1); the step that reaches the height
  ends the episode (terminated) with reward 0. Otherwise the episode times out after
  ``maxEpisodeLength`` steps. Reward terms (DexPBT-style mutable scales): the per-step cost is multiplied by
  ``rewardScale`` (1.0) and the success step pays ``successBonus`` (0.0).
- Reset: all four state variables ~ U(-0.1, 0.1).

``extras["true_objective"]`` (per env, float32): at a row whose episode ended on this step (``done`` = 1)
it is 1.0 when that episode reached the height and 0.0 when it timed out; rows that did not finish hold
0.0 and carry no meaning. Averaged over finished episodes (what the PBT observer does with the
``done_indices`` rl_games passes it) it is the **success rate**.

Live (may change while running, see ``VecTask.set_live``): ``maxTorque``, ``rewardScale`` and
``successBonus`` (read every step). The success rate (the PBT objective) does not depend on the reward terms,
so a population may mutate them (``pbt/mutation=acrobot_reward``).

Target (with the tuned entropy_coef=0.03): success rate >= 0.9 and mean episode return >= -100. Numbers for
default vs tuned hyperparameters are in docs/tasks.md.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from poptrain.tasks.base import LiveParam, TaskSpec, VecTask

# gymnasium Acrobot-v1 constants
_M1 = _M2 = 1.0
_L1 = 1.0
_LC1 = _LC2 = 0.5
_I1 = _I2 = 1.0
_G = 9.8


def _derivatives(s: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
    """Time derivative of the state ``[n, 4] = (t1, t2, t1_dot, t2_dot)`` under ``torque [n]``."""
    t1, t2, dt1, dt2 = s.unbind(1)
    d1 = _M1 * _LC1**2 + _M2 * (_L1**2 + _LC2**2 + 2 * _L1 * _LC2 * torch.cos(t2)) + _I1 + _I2
    d2 = _M2 * (_LC2**2 + _L1 * _LC2 * torch.cos(t2)) + _I2
    phi2 = _M2 * _LC2 * _G * torch.cos(t1 + t2 - math.pi / 2)
    phi1 = (
        -_M2 * _L1 * _LC2 * dt2.square() * torch.sin(t2)
        - 2 * _M2 * _L1 * _LC2 * dt2 * dt1 * torch.sin(t2)
        + (_M1 * _LC1 + _M2 * _L1) * _G * torch.cos(t1 - math.pi / 2)
        + phi2
    )
    ddt2 = (torque + d2 / d1 * phi1 - _M2 * _L1 * _LC2 * dt1.square() * torch.sin(t2) - phi2) / (
        _M2 * _LC2**2 + _I2 - d2.square() / d1
    )
    ddt1 = -(d2 * ddt2 + phi1) / d1
    return torch.stack((dt1, dt2, ddt1, ddt2), dim=1)


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Acrobot(VecTask):
    publishes_true_objective = True
    live_params = {
        "maxTorque": LiveParam("max_torque", min=0.0),
        "rewardScale": LiveParam("reward_scale", min=0.0),
        # >= 0: the success step must never pay less than a step that did not succeed (ending early pays)
        "successBonus": LiveParam("success_bonus", min=0.0),
    }

    def __init__(self, cfg: dict[str, Any], num_envs: int, device: str = "cpu", seed: int = 0):
        env = cfg.get("env", cfg)
        self.spec = TaskSpec(
            num_obs=6, num_actions=1, max_episode_length=int(env.get("maxEpisodeLength", 500))
        )
        self.max_torque = float(env.get("maxTorque", 1.0))
        self.dt = float(env.get("dt", 0.2))
        self.success_height = float(env.get("successHeight", 1.0))
        self.reward_scale = float(env.get("rewardScale", 1.0))
        self.success_bonus = float(env.get("successBonus", 0.0))
        reward_type = str(env.get("reward", "dense"))
        if reward_type not in ("dense", "sparse"):
            from poptrain.errors import ConfigError

            raise ConfigError(f"task.env.reward={reward_type!r}; valid: dense, sparse")
        self.dense = reward_type == "dense"
        self.max_vel1, self.max_vel2 = 4 * math.pi, 9 * math.pi
        super().__init__(cfg, num_envs, device, seed)

    def _allocate_state(self) -> None:
        self.state = torch.zeros(self.num_envs, 4, device=self.device)
        self.success = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _reset_rows(self, env_ids: torch.Tensor) -> None:
        self.state[env_ids] = 0.2 * self.rand(env_ids.numel(), 4) - 0.1

    def tip_height(self) -> torch.Tensor:
        """Height of the tip above the pivot, in [-2, 2]."""
        t1, t2 = self.state[:, 0], self.state[:, 1]
        return -torch.cos(t1) - torch.cos(t1 + t2)

    def _physics_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        torque = actions[:, 0] * self.max_torque
        s, h = self.state, self.dt
        # One RK4 step (gymnasium integrates the same equations with rk4 over [0, dt]).
        k1 = _derivatives(s, torque)
        k2 = _derivatives(s + 0.5 * h * k1, torque)
        k3 = _derivatives(s + 0.5 * h * k2, torque)
        k4 = _derivatives(s + h * k3, torque)
        s = s + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.state = torch.stack(
            (
                _wrap(s[:, 0]),
                _wrap(s[:, 1]),
                s[:, 2].clamp(-self.max_vel1, self.max_vel1),
                s[:, 3].clamp(-self.max_vel2, self.max_vel2),
            ),
            dim=1,
        )
        self.success = self.tip_height() >= self.success_height
        if self.dense:
            # in [-1, 0): the lower the tip, the larger the cost; still never positive, so ending early pays.
            cost = (self.tip_height() - 2.0) * (self.reward_scale / 4.0)
            reward = torch.where(self.success, self.success_bonus, cost)
        else:
            reward = torch.where(self.success, self.success_bonus, -self.reward_scale)
        return reward, self.success

    def _publish_extras(self, done: torch.Tensor) -> None:
        self.extras["true_objective"] = (self.success & done).float()

    def _observe(self) -> torch.Tensor:
        t1, t2, dt1, dt2 = self.state.unbind(1)
        return torch.stack((torch.cos(t1), torch.sin(t1), torch.cos(t2), torch.sin(t2), dt1, dt2), dim=1)
