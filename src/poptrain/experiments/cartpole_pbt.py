"""A PBT population of 4 on Cartpole (CPU): the README's main job.

Every member is an ordinary ``poptrain.train`` process with ``pbt=pbt_default pbt.policy_idx=<i>``; all members
of the experiment share ``train_dir=<train_dir>/cartpole_pbt/cartpole`` and so one workspace,
``<train_dir>/cartpole_pbt/cartpole/pbt_workspace``. The mutation set ``cartpole_env`` mixes hyperparameters
(learning rate, entropy coefficient, e_clip) with a task parameter (``task.env.maxEffort``); all of them change
in a running member (hot swap), so the population runs with zero restarts.

Local processes — every member must run at the same time, so ``--max_parallel`` >= the population::

    poptrain-launch --run poptrain.experiments.cartpole_pbt --backend processes --max_parallel 4 \\
        --pause_between 0
    poptrain status train_dir/cartpole_pbt/cartpole      # leaderboard; --watch while it runs
    poptrain report train_dir/cartpole_pbt/cartpole      # report.html with plots

SLURM (one 1-CPU job per member; the workspace must be on a filesystem every node sees)::

    poptrain-launch --run poptrain.experiments.cartpole_pbt --backend slurm --slurm_gpus_per_job 0 \\
        --slurm_workdir ./slurm_workdir --slurm_requeue

NGC (print the job commands)::

    poptrain-launch --run poptrain.experiments.cartpole_pbt --backend ngc --ngc_print_only \\
        --train_dir /workspace/train_dir
"""

import sys

from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

NUM_POLICIES = 4
NUM_ENVS = 512
EPOCH_FRAMES = NUM_ENVS * 16  # num_envs x horizon_length of CartpolePPO

_TRAIN = [
    sys.executable,
    "-m",
    "poptrain.train",
    "task=Cartpole",
    f"num_envs={NUM_ENVS}",
    "max_iterations=200",
    "train.params.config.save_frequency=0",
    "pbt=pbt_default",
    "pbt/mutation=cartpole_env",
    f"pbt.num_policies={NUM_POLICIES}",
    f"pbt.interval_steps={10 * EPOCH_FRAMES}",
    f"pbt.start_after={10 * EPOCH_FRAMES}",
    f"pbt.initial_delay={20 * EPOCH_FRAMES}",
    "pbt.replace_fraction_worst=0.25",
]

RUN_DESCRIPTION = RunDescription(
    "cartpole_pbt",
    experiments=[Experiment("cartpole", _TRAIN, ParamGrid([("pbt.policy_idx", list(range(NUM_POLICIES)))]))],
    experiment_arg_name="experiment",
    experiment_dir_arg_name="train_dir",
    param_prefix="",
    customize_experiment_name=False,
)
