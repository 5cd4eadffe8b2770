"""The main job (``make demo``): a PBT population of 4 with issue 14's search on AcrobotHard, next to one run of
the default configuration with the same seed and budget (CPU, processes backend).

AcrobotHard's defaults (``entropy_coef: 0``) plateau near success 0 within 150 epochs on 5 of 8 seeds
(docs/tasks.md). The population (``pbt=pbt_search``, ``pbt/mutation=acrobot_showcase``) starts from a Latin
hypercube sample within a quarter of each declared range of the defaults (member 0 at the defaults;
entropy_coef from 0 to 3e-3 of its 1e-4 .. 0.1 range), makes no decision until some member's success rate
has risen beyond noise, perturbs each key in its own space after an exploit, and copies a leader only when
it leads by more than 2 standard errors of the success rates. Experiment ``default`` is one unchanged run with member 0's seed, also a
PBT member (a population of 1, so the same observer measures the same objective window), which never exploits.

    poptrain-launch --run poptrain.experiments.acrobot_search --backend processes --max_parallel 5 \\
        --pause_between 0
    poptrain status train_dir/acrobot_search/population
"""

import sys

from poptrain.experiments.acrobot_pbt import EPOCHS, NUM_ENVS, NUM_POLICIES
from poptrain.launcher.run_description import Experiment, ParamList, RunDescription

SEED = 1


def overrides(
    num_policies: int = NUM_POLICIES,
    epochs: int = EPOCHS,
    num_envs: int = NUM_ENVS,
    search: str = "pbt_search",
    task: str = "AcrobotHard",
    mutation: str = "acrobot_showcase",
    interval_epochs: int = 10,
) -> list[str]:
    """Overrides shared by every member (policy_idx and seed are added per member); ``search`` = pbt preset.
    Also used by scripts/search_compare.py for its other task and arms."""
    epoch_frames = num_envs * 16  # num_envs x horizon_length (16 in every PPO config here)
    return [
        f"task={task}", f"num_envs={num_envs}", f"max_iterations={epochs}",
        "train.params.config.save_frequency=0", f"pbt={search}", f"pbt/mutation={mutation}",
        f"pbt.num_policies={num_policies}", f"pbt.interval_steps={interval_epochs * epoch_frames}",
        f"pbt.start_after={interval_epochs * epoch_frames}", f"pbt.initial_delay={2 * interval_epochs * epoch_frames}",
        "pbt.replace_fraction_worst=0.25",
    ]  # fmt: skip


RUN_DESCRIPTION = RunDescription(
    "acrobot_search",
    experiments=[
        Experiment(
            "population",
            [sys.executable, "-m", "poptrain.train", *overrides()],
            ParamList([{"pbt.policy_idx": i, "seed": SEED + i} for i in range(NUM_POLICIES)]).generate_params(
                False
            ),
        ),
        Experiment(
            "default",
            [sys.executable, "-m", "poptrain.train", *overrides(num_policies=1)],
            ParamList([{"pbt.policy_idx": 0, "seed": SEED}]).generate_params(False),
        ),
    ],
    experiment_arg_name="experiment",
    experiment_dir_arg_name="train_dir",
    param_prefix="",
    customize_experiment_name=False,
)
