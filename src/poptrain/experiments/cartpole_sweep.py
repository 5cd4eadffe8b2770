"""A small Cartpole sweep: 3 learning rates x 2 seeds, 6 short training runs (Hydra-style overrides).

Each run gets ``experiment=<name> train_dir=<train_dir>/cartpole_sweep/cartpole`` and writes checkpoints,
TensorBoard summaries and (through the launcher) ``log.txt`` to
``<train_dir>/cartpole_sweep/cartpole/<name>/``.

Local processes (2 at a time, no GPU pinning; Ctrl-C stops every run)::

    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend processes --max_parallel 2 \\
        --pause_between 0

See what would run, on any backend, without starting anything::

    poptrain-launch --run poptrain.experiments.cartpole_sweep --dry_run

SLURM (CPU-only jobs of 1 CPU; ``--slurm_wait`` stays and shows the job states; a local one-node cluster
comes from ``bash scripts/slurm-local.sh start``)::

    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend slurm --slurm_gpus_per_job 0 \\
        --slurm_workdir ./slurm_workdir --slurm_wait

NVIDIA GPU Cloud (print the ``ngc batch run`` commands; drop ``--ngc_print_only`` to submit)::

    poptrain-launch --run poptrain.experiments.cartpole_sweep --backend ngc --ngc_print_only \\
        --ngc_workspace my_ws --train_dir /workspace/train_dir
"""

import sys

from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

_TRAIN = [sys.executable, "-m", "poptrain.train", "task=Cartpole", "num_envs=256", "max_iterations=30"]

RUN_DESCRIPTION = RunDescription(
    "cartpole_sweep",
    experiments=[
        Experiment(
            "cartpole",
            _TRAIN,
            ParamGrid([("train.params.config.learning_rate", [1e-3, 3e-4, 1e-4]), ("seed", [1, 2])]),
        )
    ],
    experiment_arg_name="experiment",
    experiment_dir_arg_name="train_dir",
    param_prefix="",
)
