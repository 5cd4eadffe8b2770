"""The README's main job: train Cartpole on CPU, then play the result (replaced by a PBT population
once the engine lands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    train_dir = Path("runs/demo")
    train = [sys.executable, "-m", "poptrain.train", "task=Cartpole", f"train_dir={train_dir}",
             "experiment=cartpole_demo", "max_iterations=60"]
    if subprocess.run(train, check=False).returncode != 0:
        return 1
    ckpt = train_dir / "cartpole_demo" / "nn" / "cartpole_demo.pth"
    play = [sys.executable, "-m", "poptrain.train", "task=Cartpole", "test=True", f"checkpoint={ckpt}",
            "sigma=0.0", "num_envs=64"]
    return subprocess.run(play, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
