"""Cartpole physics: the fused, in-place step computes the textbook cart-pole equations."""

from __future__ import annotations

import math

import torch

from poptrain.tasks.cartpole import Cartpole


def textbook_step(state: torch.Tensor, action: torch.Tensor, task: Cartpole):
    """Barto, Sutton & Anderson (1983) cart-pole, semi-implicit Euler, written out term by term."""
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = action[:, 0] * task.max_push_effort
    total_mass = task.mass_cart + task.mass_pole
    pole_mass_length = task.mass_pole * task.half_length
    cos_t, sin_t = torch.cos(theta), torch.sin(theta)
    temp = (force + pole_mass_length * theta_dot**2 * sin_t) / total_mass
    theta_acc = (task.gravity * sin_t - cos_t * temp) / (
        task.half_length * (4.0 / 3.0 - task.mass_pole * cos_t**2 / total_mass)
    )
    x_acc = temp - pole_mass_length * theta_acc * cos_t / total_mass
    x_dot = x_dot + task.dt * x_acc
    theta_dot = theta_dot + task.dt * theta_acc
    x = x + task.dt * x_dot
    theta = theta + task.dt * theta_dot
    reward = 1.0 - theta**2 - 0.01 * x_dot.abs() - 0.005 * theta_dot.abs()
    failed = (x.abs() > task.reset_dist) | (theta.abs() > math.pi / 2)
    reward = torch.where(failed, torch.full_like(reward, task.reset_penalty), reward)
    return torch.stack((x, x_dot, theta, theta_dot), dim=1), reward, failed


def test_physics_step_matches_the_textbook_equations():
    task = Cartpole({}, num_envs=512, seed=1)
    gen = torch.Generator().manual_seed(2)
    # states spread over the whole range, including rows that fail on this step
    task.state.copy_((torch.rand(512, 4, generator=gen) - 0.5) * torch.tensor([6.2, 4.0, 3.3, 6.0]))
    actions = torch.rand(512, 1, generator=gen) * 2 - 1
    expected_state, expected_reward, expected_failed = textbook_step(task.state.clone(), actions, task)
    reward, failed = task._physics_step(actions)
    assert torch.allclose(task.state, expected_state, atol=1e-5, rtol=1e-5)
    assert torch.allclose(reward, expected_reward, atol=1e-5, rtol=1e-5)
    assert torch.equal(failed, expected_failed)
    assert failed.any() and not failed.all()


def test_reset_draws_positions_and_velocities_in_their_ranges():
    task = Cartpole({}, num_envs=4096, seed=3)
    task.reset()
    x, x_dot, theta, theta_dot = task.state.unbind(1)
    for pos in (x, theta):
        assert pos.abs().max() <= 0.1 and pos.abs().max() > 0.09
    for vel in (x_dot, theta_dot):
        assert vel.abs().max() <= 0.25 and vel.abs().max() > 0.24
