"""Seeing and reusing a population (reads a PBT workspace, never writes it).

- ``locate``: find the workspace under a run dir
- ``population``: read a workspace once into a ``PopulationView`` (tolerant of half-written content)
- ``status``: the leaderboard rows, verdict, JSON and rich table
- ``colors``, ``plots``: figures (matplotlib Agg), one colour strategy for 2..256 members
- ``html``: report.html with the PNGs embedded
- ``schedule``: the hyperparameter schedule of a member's weight lineage (pure)
- ``replay``: retrain along that schedule as a chain of training runs
- ``overrides``: Hydra overrides that rebuild a saved config
"""
