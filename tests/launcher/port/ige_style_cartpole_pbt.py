# An experiment module written the way IsaacGymEnvs' pbt/experiments/*.py are (module-level _names, a
# ParamGrid with a tuple key whose values vary together, numpy values, a "python -m" command string,
# hydra.run.dir as the experiment dir). Ported by changing only the import line below.
import numpy as np

from poptrain.launcher.run_description import Experiment, ParamGrid, RunDescription

_env = "cartpole"
_name = f"{_env}_port"
_iterations = 12
_pbt_num_policies = 2

_params = ParamGrid(
    [
        (("pbt.policy_idx", "seed"), ([0, 11], [1, 12])),
        ("train.params.config.learning_rate", np.array([3e-4], dtype=np.float32)),
        ("train.params.config.gamma", [np.float64(0.99)]),
    ]
)

_experiments = [
    Experiment(
        f"{_name}",
        f"python -m poptrain.train task=Cartpole headless=True "
        f"max_iterations={_iterations} num_envs=64 train.params.config.save_frequency=0 "
        f"pbt=pbt_default pbt.num_policies={_pbt_num_policies} pbt.workspace=workspace_{_name} "
        f"pbt.initial_delay=4096 pbt.interval_steps=2048 pbt.start_after=2048 pbt/mutation=lr_only",
        _params.generate_params(randomize=False),
    ),
]


RUN_DESCRIPTION = RunDescription(
    f"{_name}",
    experiments=_experiments,
    experiment_arg_name="experiment",
    experiment_dir_arg_name="hydra.run.dir",
    param_prefix="",
    customize_experiment_name=False,
)
