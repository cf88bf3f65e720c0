"""Exceptions with messages that say what to do next."""

from __future__ import annotations


class MetaRLError(Exception):
    """Base class for every error metarl raises on bad input."""


class UnknownFamilyError(MetaRLError, KeyError):
    """A family id that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TaskError(MetaRLError, ValueError):
    """A task that does not belong to its family's task space, or malformed task data."""


class ConfigError(MetaRLError, ValueError):
    """A malformed or unknown configuration entry."""


class CheckpointError(MetaRLError, RuntimeError):
    """A checkpoint that cannot be read, or that belongs to another run."""


class FamilyArgumentError(ConfigError, TypeError):
    """Keyword arguments a family does not take (``make_family(id, **kwargs)``)."""


class UserModuleError(MetaRLError, ImportError):
    """An ``--import`` module that cannot be found (not an error inside the module:
    that one keeps its own traceback)."""
