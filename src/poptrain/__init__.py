"""poptrain: Population-Based Training for RL on massively parallel tensor environments."""

__version__ = "0.1.0"
