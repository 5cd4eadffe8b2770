"""Hydra entry: compose the config, build the task, run rl_games (train) or its player (play).

    python -m poptrain.train task=Cartpole                      # train
    python -m poptrain.train task=Cartpole test=True checkpoint=runs/Cartpole/nn/Cartpole.pth sigma=0.0

Training ends by printing ``train: frames=F mean_reward=R checkpoint=PATH``; play ends by printing
``play: episodes=N mean_return=R mean_length=L``. Bad input gets one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from poptrain.build import make_runner, setup_torch
from poptrain.config import CFG_DIR, check_overrides, prepare
from poptrain.errors import ConfigError, PoptrainError
from poptrain.play import PlayResult, run_play
from poptrain.wandb_run import init_wandb

# CFG_DIR stays importable from here: tests and scripts find the config folder as ``poptrain.train.CFG_DIR``
__all__ = ["CFG_DIR", "TrainResult", "launch", "main", "run_training"]

log = logging.getLogger(__name__)


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


def run_training(cfg: DictConfig, observers: list[Any] | None = None) -> TrainResult:
    """Train with rl_games; returns frames, final mean reward and the last checkpoint written."""
    # PBT first: it may resume from a checkpoint or mutate initial params, i.e. change cfg.
    extra = _extra_observers(cfg)
    finished = [o for o in extra if getattr(o, "already_finished", None) is not None]
    done = finished[0].already_finished if finished else None
    if done is not None:  # a PBT member started again after its end: report its final state, train nothing
        # ... but export best/ again: it may have been killed in the middle of its export (chaos suite)
        finished[0].export_best()
        return TrainResult(
            frames=int(done.frames),
            mean_reward=float(done.objective),
            checkpoint=str(Path(_pbt_member_dir(cfg, done)) / done.checkpoint),
            experiment_dir=str(done.experiment_dir),
        )
    runner = make_runner(cfg, [*(observers or []), *extra])
    multi = runner.algo_observer
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


# ---- entry --------------------------------------------------------------------------------------------
def launch(cfg: DictConfig) -> int:
    """Validate, then train or play. Returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    prepare(cfg)  # the step api.compose ends with too (run dir, validation, seed)
    setup_torch(cfg)
    if cfg.wandb_activate:
        init_wandb(cfg)
    if cfg.test:
        result: TrainResult | PlayResult = run_play(cfg)
    else:
        result = run_training(cfg)
    print(result.line(), flush=True)
    return 0


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        code = launch(cfg)
    except PoptrainError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(code)


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
