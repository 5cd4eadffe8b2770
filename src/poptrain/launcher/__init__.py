"""Describe sweeps and populations once (run_description) and run them on a backend (run, backends).

poptrain-launch --run poptrain.experiments.cartpole_sweep --backend processes
"""

from poptrain.launcher.run_description import (
    Experiment,
    ParamGenerator,
    ParamGrid,
    ParamList,
    PlannedExperiment,
    RunDescription,
)

__all__ = ["Experiment", "ParamGenerator", "ParamGrid", "ParamList", "PlannedExperiment", "RunDescription"]
