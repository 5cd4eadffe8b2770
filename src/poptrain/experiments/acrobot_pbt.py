"""A PBT population of 4 on AcrobotHard swing-up (CPU): the harder task, where hyperparameters matter.

``task=AcrobotHard`` is Acrobot with a weak motor (maxTorque 0.4), a high goal (successHeight 1.5) and a
300-step time limit; its ``true_objective`` is the success rate over finished episodes and PBT ranks members
by it. With the generic defaults (``entropy_coef: 0``) a run plateaus near success 0 within the 150-epoch
budget on 5 of 8 seeds measured, while ``entropy_coef=0.03`` reaches 0.86-0.96 on seeds 1-4 (docs/tasks.md). The population mutates the live PPO
hyperparameters (``pbt/mutation=acrobot_showcase``: default_mutation's keys, with the zero rule moving
``entropy_coef`` off 0 to ~0.01 instead of ~1e-4) and copies the leaders' weights in process (hot swaps, no
restarts). Members get seeds 1..4; member 0 keeps the default config until its first exploit or mutation,
members 1..3 mutate their initial hyperparameters once at their first start.

    poptrain-launch --run poptrain.experiments.acrobot_pbt --backend processes --max_parallel 4 \\
        --pause_between 0
    poptrain status train_dir/acrobot_pbt/acrobot

On a machine that fits fewer members than the population, time-slice them: ``--slots 2 --max_parallel 2``
runs the 4 members in 2 processes, 2 members each, switching every PBT interval (poptrain.pbt.slots).

``scripts/pbt_vs_fixed.py`` compares this population with the same number of fixed-default runs.
"""

import sys

from poptrain.launcher.run_description import Experiment, ParamList, RunDescription

NUM_POLICIES = 4
NUM_ENVS = 512
EPOCHS = 150  # 1.23 M env steps per member
EPOCH_FRAMES = NUM_ENVS * 16  # num_envs x horizon_length of AcrobotHardPPO


def member_overrides(
    num_policies: int = NUM_POLICIES, epochs: int = EPOCHS, num_envs: int = NUM_ENVS
) -> list[str]:
    """The overrides every member shares (policy_idx and seed are added per member)."""
    epoch_frames = num_envs * 16
    return [
        "task=AcrobotHard",
        f"num_envs={num_envs}",
        f"max_iterations={epochs}",
        "train.params.config.save_frequency=0",
        "pbt=pbt_default",
        "pbt/mutation=acrobot_showcase",
        f"pbt.num_policies={num_policies}",
        f"pbt.interval_steps={10 * epoch_frames}",
        f"pbt.start_after={10 * epoch_frames}",
        f"pbt.initial_delay={20 * epoch_frames}",
        "pbt.replace_fraction_worst=0.25",
    ]


RUN_DESCRIPTION = RunDescription(
    "acrobot_pbt",
    experiments=[
        Experiment(
            "acrobot",
            [sys.executable, "-m", "poptrain.train", *member_overrides()],
            ParamList([{"pbt.policy_idx": i, "seed": i + 1} for i in range(NUM_POLICIES)]).generate_params(
                False
            ),
        )
    ],
    experiment_arg_name="experiment",
    experiment_dir_arg_name="train_dir",
    param_prefix="",
    customize_experiment_name=False,
)
