"""Play a trained policy headless (``python -m poptrain.train test=True checkpoint=PATH``, ``poptrain play``).

Ends by printing ``play: episodes=N mean_return=R mean_length=L``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from poptrain.build import make_runner, rlg_params
from poptrain.errors import ConfigError, PoptrainError


@dataclass
class PlayResult:
    episodes: int
    mean_return: float
    mean_length: float

    def line(self) -> str:
        return f"play: episodes={self.episodes} mean_return={self.mean_return:.2f} mean_length={self.mean_length:.1f}"


def run_play(cfg: DictConfig) -> PlayResult:
    """Load ``cfg.checkpoint`` into the rl_games player and run ``play_episodes`` episodes headless.

    ``sigma`` (``sigma_mode=std``, ours): empty or 0 = deterministic (the policy mean); > 0 = sample with that
    std, for any network (``fixed_sigma`` True or False: the policy's log-std output is replaced).
    ``sigma_mode=rl_games`` (IsaacGymEnvs' meaning, rl_games ``override_sigma``): the value is written as is
    into a ``fixed_sigma`` network's sigma parameter (a log-std: 0 means std 1) and actions follow
    ``train.params.config.player.deterministic`` (rl_games default True); a ``fixed_sigma: False`` network
    keeps its own sigma, with a warning, as rl_games does.
    """
    from poptrain.checkpoints import check_model_compat, load_checkpoint_file

    state = load_checkpoint_file(cfg.checkpoint)
    params = rlg_params(cfg)
    sigma = None if cfg.sigma in ("", None) else float(cfg.sigma)
    ige_sigma = str(cfg.get("sigma_mode", "std")) == "rl_games"
    if ige_sigma:
        deterministic = bool((params["config"].get("player") or {}).get("deterministic", True))
    else:
        deterministic = sigma is None or sigma == 0.0
    params["config"]["player"] = {"use_vecenv": True, "deterministic": deterministic}
    runner = make_runner(cfg, params=params)
    player = runner.create_player()
    check_model_compat(state, player.model, str(cfg.checkpoint))
    player.model.load_state_dict({k.replace("_orig_mod.", ""): v for k, v in state["model"].items()})
    if player.normalize_input and "running_mean_std" in state:
        player.model.running_mean_std.load_state_dict(state["running_mean_std"])
    net = player.model.a2c_network
    if ige_sigma and sigma is not None:
        if getattr(net, "fixed_sigma", False):
            with torch.no_grad():
                net.sigma.fill_(sigma)  # rl_games override_sigma: the raw value (a log-std)
        else:
            # a logger created now: Hydra's disabled job logging switched off the loggers that existed before it
            logging.getLogger("poptrain.play").warning(
                "sigma=%g ignored: the network has fixed_sigma False (rl_games does the same)", sigma
            )
    elif sigma is not None and sigma > 0:
        force_log_std(net, math.log(sigma))
    player.has_batch_dimension = True
    return play_episodes(player, player.env, int(cfg.play_episodes), deterministic)


def force_log_std(net: Any, log_std: float) -> None:
    """Make the actor's log-std output ``log_std`` everywhere.

    A ``fixed_sigma`` network holds it as a parameter (filled in place); otherwise a layer computes it from
    the observation (``net.sigma`` is an nn.Linear, whose ``fill_`` fails) and a forward hook replaces that
    output (the second of rl_games' continuous ``(mu, sigma, value, states)``) after any sigma activation.
    """
    if not hasattr(net, "sigma"):
        raise ConfigError("sigma=... needs a continuous-action policy (this network has no sigma output)")
    if getattr(net, "fixed_sigma", False):
        with torch.no_grad():
            net.sigma.fill_(log_std)
        return

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        mu, sigma, *rest = output
        return (mu, torch.full_like(sigma, log_std), *rest)

    net.register_forward_hook(hook)


def play_episodes(player: Any, env: Any, episodes: int, deterministic: bool) -> PlayResult:
    """Run the batch until ``episodes`` episodes finished; mean return and length of the first ones."""
    obs = env.reset()["obs"]
    n = obs.shape[0]
    ret = torch.zeros(n, device=obs.device)
    length = torch.zeros(n, device=obs.device)
    returns: list[torch.Tensor] = []
    lengths: list[torch.Tensor] = []
    done_count = 0
    max_steps = 100_000
    for _ in range(max_steps):
        actions = player.get_action(obs, deterministic)
        obs_dict, rew, done, _ = env.step(actions)
        obs = obs_dict["obs"]
        ret += rew
        length += 1
        done_ids = done.nonzero(as_tuple=False).squeeze(-1)
        if done_ids.numel():
            returns.append(ret[done_ids].clone())
            lengths.append(length[done_ids].clone())
            done_count += done_ids.numel()
            ret[done_ids] = 0
            length[done_ids] = 0
        if done_count >= episodes:
            break
    if not returns:
        raise PoptrainError(f"no episode finished within {max_steps} steps")
    r = torch.cat(returns)[:episodes]
    ln = torch.cat(lengths)[:episodes]
    return PlayResult(episodes=int(r.numel()), mean_return=float(r.mean()), mean_length=float(ln.mean()))
