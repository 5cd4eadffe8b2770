"""Example RUN_DESCRIPTION modules for ``poptrain-launch --run poptrain.experiments.<module>``."""
