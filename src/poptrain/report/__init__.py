"""Seeing and reusing a population (reads a PBT workspace, never writes it).

- ``locate``: find the workspace under a run dir
- ``population``: read a workspace once into a ``PopulationView`` (tolerant of half-written content)
- ``status``: the leaderboard rows, verdict, JSON and rich table
- ``colors``, ``plots``: figures (matplotlib Agg), one colour strategy for 2..256 members
- ``html``: report.html with the PNGs embedded
- ``schedule``: the hyperparameter schedule of a member's weight lineage (pure)

Retraining along a schedule is ``poptrain.replay``; overrides that rebuild a saved config are
``poptrain.overrides``.
"""
