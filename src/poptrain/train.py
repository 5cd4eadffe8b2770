"""Hydra entry: compose the config, build the task, run rl_games (train) or its player (play).

    python -m poptrain.train task=Cartpole                      # train
    python -m poptrain.train task=Cartpole test=True checkpoint=runs/Cartpole/nn/Cartpole.pth sigma=0.0

Training ends by printing ``train: frames=F mean_reward=R checkpoint=PATH``; play ends by printing
``play: episodes=N mean_return=R mean_length=L``. Bad input gets one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from poptrain.errors import ConfigError, PoptrainError

log = logging.getLogger(__name__)

CFG_DIR = Path(__file__).parent / "cfg"


# ---- config helpers ---------------------------------------------------------------------------------
def register_resolvers() -> None:
    """The IsaacGymEnvs-style resolvers our YAML uses (idempotent)."""
    resolvers: dict[str, Callable[..., Any]] = {
        "resolve_default": lambda default, arg: default if arg in ("", None) else arg,
        "eq": lambda x, y: str(x).lower() == str(y).lower(),
        "if": lambda pred, a, b: a if pred else b,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    from poptrain.pbt.params import register_config_defaults

    register_config_defaults()  # pbt/settings: every PBT default, generated from PbtSettings (pbt_default.yaml)


register_resolvers()


def _check_device(name: str, key: str) -> str:
    name = str(name)
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r} but no CUDA device is available; use {key}=cpu")
        return name
    raise ConfigError(f"{key}={name!r} is not a device; valid: cpu, cuda, cuda:N")


def validate(cfg: DictConfig) -> None:
    """Check the composed config once; report every problem together."""
    from poptrain.tasks import get_task_factory

    problems: list[str] = []
    factory = None
    try:
        factory = get_task_factory(str(cfg.task.name))
    except ConfigError as exc:
        problems.append(str(exc))
    # A task may check the train config against itself (the Gym adapter: discrete vs continuous algo).
    check = getattr(factory, "check_train_config", None)
    if check is not None:
        try:
            check(OmegaConf.to_container(cfg.task, resolve=True), OmegaConf.to_container(cfg.train.params, resolve=True))
        except ConfigError as exc:
            problems.append(str(exc))
    num_envs = cfg.task.env.get("numEnvs")
    try:
        if int(num_envs) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"num_envs must be a positive integer, got {num_envs!r}")
    for key in ("rl_device", "sim_device"):
        try:
            _check_device(cfg[key], key)
        except ConfigError as exc:
            problems.append(str(exc))
    if int(cfg.num_threads) < 0:
        problems.append(f"num_threads must be >= 0 (0 = torch default), got {cfg.num_threads!r}")
    if cfg.checkpoint and not Path(str(cfg.checkpoint)).is_file():
        problems.append(f"checkpoint {str(cfg.checkpoint)!r} does not exist (expected a .pth file written by training)")
    if cfg.test and not cfg.checkpoint:
        problems.append("test=True needs checkpoint=PATH (a .pth written by training)")
    if cfg.test and int(cfg.play_episodes) <= 0:
        problems.append(f"play_episodes must be a positive integer, got {cfg.play_episodes!r}")
    if str(cfg.get("sigma_mode", "std")) not in ("std", "rl_games"):
        problems.append(f"sigma_mode must be std (ours) or rl_games (IsaacGymEnvs' meaning), got {cfg.sigma_mode!r}")
    if cfg.sigma not in ("", None):
        try:
            # rl_games' meaning is a log-std: any real number; ours is a std
            if float(cfg.sigma) < 0 and str(cfg.get("sigma_mode", "std")) != "rl_games":
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"sigma must be a number >= 0 (or empty for the model's own), got {cfg.sigma!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def hydra_run_dir() -> str:
    """``hydra.run.dir`` of this Hydra app ('.' outside one, and by default: cfg/config.yaml)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return str(HydraConfig.get().run.dir)
    except Exception:  # noqa: BLE001 - no Hydra context
        pass
    return "."


def resolve_run_dir(cfg: DictConfig, run_dir: str | None = None) -> None:
    """A relative ``train_dir`` lies under ``hydra.run.dir`` when one is given.

    IsaacGymEnvs runs on Hydra 1.1, whose job changes into ``hydra.run.dir``: its launcher passes
    ``hydra.run.dir=<train_dir>/<run>/<experiment>`` (``experiment_dir_arg_name="hydra.run.dir"``) and the
    runs land there. We never change the working directory (version_base 1.3); resolving the relative output
    root against the run dir puts them in the same place."""
    run_dir = hydra_run_dir() if run_dir is None else run_dir
    if run_dir not in ("", ".") and not Path(str(cfg.train_dir)).is_absolute():
        cfg.train_dir = str(Path(run_dir) / str(cfg.train_dir))


def resolve_seed(cfg: DictConfig) -> int:
    """Return the run's seed; -1 draws one (and writes it back into cfg so it is recorded)."""
    seed = int(cfg.seed)
    if seed == -1:
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
        cfg.seed = seed
    return seed


def rlg_params(cfg: DictConfig) -> dict[str, Any]:
    """The rl_games ``params`` dict for this run (a fresh copy: rl_games mutates what it is given)."""
    params = cast(dict[str, Any], OmegaConf.to_container(cfg.train.params, resolve=True))
    assert isinstance(params, dict)
    conf = params["config"]
    conf["train_dir"] = str(cfg.train_dir)
    conf["device"] = conf["device_name"] = str(cfg.rl_device)
    conf["env_name"] = "poptrain"
    params["seed"] = int(cfg.seed)
    params["torch_threads"] = int(cfg.num_threads)
    return params


def task_factory(cfg: DictConfig):
    """A zero-argument function that builds this run's task (called by rl_games when it needs the env)."""
    from poptrain.tasks import make_task

    task_cfg = cast(dict[str, Any], OmegaConf.to_container(cfg.task, resolve=True))
    assert isinstance(task_cfg, dict)
    name, num_envs = str(cfg.task.name), int(cfg.task.env.numEnvs)
    device, seed = str(cfg.sim_device), int(cfg.seed)
    return lambda: make_task(name, task_cfg, num_envs=num_envs, device=device, seed=seed)


# glibc mallopt() parameter numbers (malloc.h) and the values tune_allocator sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit: larger blocks are still mmap'ed
_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def tune_allocator() -> bool:
    """Let freed tensor memory be reused in-process instead of going back to the OS (glibc only).

    PyTorch's CPU allocator mallocs and frees every tensor. With glibc's defaults, blocks from 128 KiB up are
    mmap'ed and unmapped, or trimmed off the heap top, so each epoch page-faults its batch-sized buffers
    afresh: at 4,096 Cartpole envs rl_games spent ~20 % of its CPU time in the kernel on page faults
    (benchmarks/RESULTS.md). A fixed 32 MiB mmap threshold and a 1 GiB trim threshold keep those blocks
    in the heap. The process keeps its peak heap instead of shrinking after it. Disable with
    POPTRAIN_MALLOC_TUNING=0. Returns whether the settings were applied.
    """
    if os.environ.get("POPTRAIN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc tuning applied: %s", applied)
    return applied


def _setup_torch(cfg: DictConfig) -> None:
    tune_allocator()
    if int(cfg.num_threads) > 0:
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.torch_deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cfg.train_dir) / ".inductor_cache"))


def _on_cpu(value: Any) -> Any:
    """``value`` with every tensor (in nested dicts, lists, tuples) moved to the CPU; other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value


def _make_save_atomic(algo: Any) -> None:
    """Make rl_games' agent.save write temp-file + os.replace (its own torch.save is not atomic) with CPU
    tensors, and agent.restore load onto the agent's own device.

    rl_games saves tensors where they live and restores with a plain ``torch.load`` (no map_location): a
    checkpoint written on ``cuda`` then fails to load on a machine without CUDA ("Attempting to deserialize
    object on a CUDA device"), and one written on ``cuda:1`` lands on GPU 1 (or fails with "invalid device
    ordinal" where CUDA_VISIBLE_DEVICES pins one GPU). Saving CPU tensors makes every checkpoint portable (the
    device-to-host copy is one per save, ~100 KiB for the 32-32 MLPs here); restoring with
    ``map_location=<agent device>`` also reads files written elsewhere (rl_games', IsaacGymEnvs').
    """
    from poptrain.checkpoints import atomic_torch_save, load_checkpoint_file

    def save(fn: str) -> None:
        atomic_torch_save(_on_cpu(algo.get_full_state_weights()), fn + ".pth")

    def restore(fn: str, set_epoch: bool = True) -> None:
        state = load_checkpoint_file(fn, map_location=str(algo.ppo_device))
        state["model"] = {k.replace("_orig_mod.", ""): v for k, v in state["model"].items()}
        algo.set_full_state_weights(state, set_epoch=set_epoch)

    algo.save = save
    algo.restore = restore


# ---- train --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    frames: int
    mean_reward: float
    checkpoint: str
    experiment_dir: str

    def line(self) -> str:
        return f"train: frames={self.frames} mean_reward={self.mean_reward:.2f} checkpoint={self.checkpoint}"


def _extra_observers(cfg: DictConfig) -> list[Any]:
    """Observers beyond our own bookkeeping: the PBT observer when ``pbt.enabled``."""
    if not cfg.get("pbt") or not cfg.pbt.get("enabled", False):
        return []
    from poptrain.pbt.observer import member_observer

    return [member_observer(cfg)]  # start-up (claim, resume, initial mutation), then the observer


def _pbt_member_dir(cfg: DictConfig, meta: Any) -> Path:
    """The workspace folder of ``meta``'s member (where its final checkpoint is)."""
    from poptrain.pbt.observer import workspace_for
    from poptrain.pbt.params import PbtSettings

    return workspace_for(cfg, PbtSettings.from_cfg(cfg.pbt, cfg)).member_dir(int(meta.member))


class _AtomicSaveObserver:
    """Hooks into after_init to make the agent's checkpoint writes atomic and portable (see _make_save_atomic)."""

    def after_init(self, algo: Any) -> None:
        _make_save_atomic(algo)


def run_training(cfg: DictConfig, observers: list[Any] | None = None) -> TrainResult:
    """Train with rl_games; returns frames, final mean reward and the last checkpoint written."""
    from rl_games.torch_runner import Runner

    from poptrain import rlg

    # PBT first: it may resume from a checkpoint or mutate initial params, i.e. change cfg.
    extra = _extra_observers(cfg)
    finished = [o for o in extra if getattr(o, "already_finished", None) is not None]
    done = finished[0].already_finished if finished else None
    if done is not None:  # a PBT member started again after its end: report its final state, train nothing
        # ... but export best/ again: it may have been killed in the middle of its export (chaos suite)
        finished[0].export_best()
        return TrainResult(frames=int(done.frames), mean_reward=float(done.objective),
                           checkpoint=str(Path(_pbt_member_dir(cfg, done)) / done.checkpoint),
                           experiment_dir=str(done.experiment_dir))
    rlg.set_task_factory(task_factory(cfg))
    multi = rlg.MultiObserver([_AtomicSaveObserver(), *(observers or []), *extra])
    runner = Runner(algo_observer=multi)
    runner.load({"params": rlg_params(cfg)})
    args: dict[str, Any] = {"train": True, "play": False}
    if cfg.checkpoint:
        from poptrain.checkpoints import load_checkpoint_file

        load_checkpoint_file(cfg.checkpoint)  # clear error for a missing / foreign file before rl_games
        args["checkpoint"] = str(cfg.checkpoint)
    runner.run(args)
    for obs in multi.observers:
        finish = getattr(obs, "finish", None)
        if finish is not None:
            finish()
    algo = multi.algo
    mean = float(algo.game_rewards.get_mean()[0]) if algo.game_rewards.current_size > 0 else math.nan
    ckpts = sorted(Path(algo.nn_dir).glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return TrainResult(
        frames=int(algo.frame),
        mean_reward=mean,
        checkpoint=str(ckpts[-1]) if ckpts else "",
        experiment_dir=str(algo.experiment_dir),
    )


# ---- play ---------------------------------------------------------------------------------------------
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
    from rl_games.torch_runner import Runner

    from poptrain import rlg
    from poptrain.checkpoints import check_model_compat, load_checkpoint_file

    state = load_checkpoint_file(cfg.checkpoint)
    rlg.set_task_factory(task_factory(cfg))
    params = rlg_params(cfg)
    sigma = None if cfg.sigma in ("", None) else float(cfg.sigma)
    ige_sigma = str(cfg.get("sigma_mode", "std")) == "rl_games"
    if ige_sigma:
        deterministic = bool((params["config"].get("player") or {}).get("deterministic", True))
    else:
        deterministic = sigma is None or sigma == 0.0
    params["config"]["player"] = {"use_vecenv": True, "deterministic": deterministic}
    runner = Runner()
    runner.load({"params": params})
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
        _force_log_std(net, math.log(sigma))
    player.has_batch_dimension = True
    return play_episodes(player, player.env, int(cfg.play_episodes), deterministic)


def _force_log_std(net: Any, log_std: float) -> None:
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


# ---- entry --------------------------------------------------------------------------------------------
def launch(cfg: DictConfig) -> int:
    """Validate, then train or play. Returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    resolve_run_dir(cfg)
    validate(cfg)
    resolve_seed(cfg)
    _setup_torch(cfg)
    if cfg.wandb_activate:
        _init_wandb(cfg)
    if cfg.test:
        result: TrainResult | PlayResult = run_play(cfg)
    else:
        result = run_training(cfg)
    print(result.line(), flush=True)
    return 0


WANDB_RUN_ENV = "POPTRAIN_WANDB_RUN_ID"


def _init_wandb(cfg: DictConfig) -> None:
    try:
        import wandb
    except ImportError:
        raise ConfigError("wandb_activate=True needs the wandb extra: pip install 'poptrain[wandb]'") from None
    run_id = os.environ.get(WANDB_RUN_ENV) or None
    run = wandb.init(
        project=str(cfg.wandb_project),
        entity=str(cfg.wandb_entity) or None,
        group=str(cfg.wandb_group) or None,
        name=str(cfg.wandb_name) or str(cfg.task.name),
        id=run_id,
        resume="allow" if run_id else None,
        sync_tensorboard=True,
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )
    # a PBT restart (os.execv keeps the environment) resumes this same W&B run instead of starting a new one
    os.environ[WANDB_RUN_ENV] = str(run.id)


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        code = launch(cfg)
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(code)


def check_overrides(overrides: list[str]) -> None:
    """Compose the config once with ``overrides``; turn Hydra's composition errors into one ConfigError.

    Hydra itself reports an unknown task / config key as a multi-line message with exit code 1; we name
    the bad value and the valid ones on one line (exit code 2, like every other bad input).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException

    try:
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
            compose(config_name="config", overrides=list(overrides))
    except MissingConfigException as exc:
        found = re.search(r"Could not find '([^/']+)/([^']*)'", str(exc))
        if not found:
            raise ConfigError(str(exc).splitlines()[0]) from None
        group, name = found.groups()
        options = sorted(p.stem for p in (CFG_DIR / group).glob("*.yaml"))
        what = "task" if group == "task" else f"{group} config"
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(options)}") from None
    except HydraException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        bad_key = re.match(r"Could not override '([^']+)'", first)
        if bad_key:
            raise ConfigError(
                f"unknown config key {bad_key.group(1)!r} (not in the composed config; "
                f"`python -m poptrain.train --cfg job` lists every key)"
            ) from None
        raise ConfigError(f"bad override in {' '.join(overrides)!r}: {first}") from None


def main() -> None:
    """Console-script entry (``poptrain-train``): Hydra parses sys.argv."""
    args = sys.argv[1:]
    if all(not a.startswith("-") and not a.startswith("hydra") for a in args):
        try:
            check_overrides(args)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
