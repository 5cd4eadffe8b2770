"""The main job's pieces without running it: the experiment composes into a valid search population next to a
default run, and the closing line compares the population's best with the default run's measured result."""

from __future__ import annotations

import math

from hydra import compose, initialize_config_dir

from poptrain.demo import comparison_line
from poptrain.experiments import acrobot_search
from poptrain.pbt.params import PbtSettings
from poptrain.train import CFG_DIR


def test_population_and_default_run_share_seed_and_budget(meta_factory):
    pop, default = acrobot_search.RUN_DESCRIPTION.experiments
    assert [p["seed"] for p in pop.params] == [1, 2, 3, 4]
    assert [p["seed"] for p in default.params] == [1]
    for exp, n in ((pop, 4), (default, 1)):
        args = exp.argv[3:]
        with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*args, "pbt.policy_idx=0"])
        params = PbtSettings.from_cfg(cfg.pbt, cfg)
        assert (params.explore, params.initial, params.noise_z, params.num_policies) == (
            "perturb",
            "sample",
            2.0,
            n,
        )
        assert cfg.task.env.maxTorque == 0.4 and int(cfg.max_iterations) == 150


def test_comparison_line(meta_factory):
    pop = {
        0: meta_factory(
            0, objective=0.95, frames=1_228_800, extra={"objective_se": 0.0093, "objective_n": 512}
        ),
        1: meta_factory(1, objective=0.40, frames=1_228_800),
        2: meta_factory(2, objective=math.nan, frames=1_228_800),
    }
    default = meta_factory(
        0, objective=0.037, frames=1_228_800, extra={"objective_se": 0.0084, "objective_n": 512}
    )
    line = comparison_line(pop, default)
    assert line.startswith("population best (member 0) success 0.950 ±0.0093 (window of 512 episodes)")
    assert "default configuration (same seed, same 1,228,800 env steps) 0.037 ±0.0084" in line
    assert line.endswith(": +0.913")
    assert comparison_line(pop, None).endswith("no result")
    assert "no member has a finite objective" in comparison_line({2: pop[2]}, default)
