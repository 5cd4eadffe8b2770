"""The project's small error tree. Every error names the bad value and what would be valid."""


class PoptrainError(Exception):
    """Base class: a user-facing error whose message is printed alone (no traceback wall)."""


class ConfigError(PoptrainError):
    """A configuration value is invalid (unknown task, bad num_envs, bad checkpoint, ...)."""


class LaunchError(PoptrainError):
    """A launcher could not start, submit or observe an experiment."""


class WorkspaceError(PoptrainError):
    """The PBT workspace is unusable (duplicate member, full disk, foreign layout, ...)."""
