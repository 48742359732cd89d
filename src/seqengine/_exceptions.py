"""The one exception tree of seqengine.

    SeqEngineError
     ├── FlowError                 a sequence/flow is invalid (raised when built or loaded)
     │    └── FlowFileError        a sequence file cannot be read or parsed
     ├── ConfigError               a workspace, account, lead or setting value is invalid
     ├── TemplateError             a template cannot be rendered (unknown/empty variable, too long)
     ├── IllegalTransition         an action was asked to move between states the lifecycle forbids
     ├── StorageError              a storage backend failed or was used wrongly
     │    ├── LeaseLost            the worker's lease was taken over; its write was rejected
     │    └── SchemaOutdated       the database schema is behind this version of seqengine
     ├── PluginError               an entry point (executor, storage) could not be loaded
     └── ExecutorError             a channel executor failed outside the outcome protocol

Errors that come from the *user's input* name the thing (file, step id, field) and say what to
change; outcomes reported by platforms at run time are values (see ``seqengine.Outcome``), not
exceptions.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExecutorError",
    "FlowError",
    "FlowFileError",
    "IllegalTransition",
    "LeaseLost",
    "PluginError",
    "ProviderRefused",
    "SchemaOutdated",
    "SeqEngineError",
    "StaleRecord",
    "StorageError",
    "TemplateError",
    "UsageError",
]


class SeqEngineError(Exception):
    """Base class of every error seqengine raises on purpose."""


class FlowError(SeqEngineError, ValueError):
    """A sequence's flow graph or settings are invalid.

    Attributes:
        step_id: the offending step, or ``None`` when the problem is sequence-wide.
        problems: every problem found, one message each (the first is the message).
    """

    def __init__(
        self, message: str, *, step_id: str | None = None, problems: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.problems: tuple[str, ...] = problems or (message,)


class FlowFileError(FlowError):
    """A sequence file cannot be read, parsed or converted."""


class ConfigError(SeqEngineError, ValueError):
    """A workspace, account, lead or other configuration value is invalid."""


class UsageError(ConfigError):
    """Command-line options that do not go together (the CLI exits 2, as for any usage error)."""


class TemplateError(SeqEngineError, ValueError):
    """A template cannot be rendered for a lead."""


class IllegalTransition(SeqEngineError):
    """An action was asked to change state in a way the lifecycle table forbids."""


class StorageError(SeqEngineError):
    """A storage backend failed or was used wrongly."""


class LeaseLost(StorageError):
    """The lease on an action was taken over by another worker; the write changed nothing."""


class StaleRecord(StorageError):
    """A write was planned from a record another writer has changed since; nothing changed.

    A worker decides again from what is stored now (the outcome it holds is not lost).
    """


class SchemaOutdated(StorageError):
    """The database schema is older than this version of seqengine needs."""


class PluginError(SeqEngineError):
    """An entry point could not be loaded; the message says which extra to install."""


class ExecutorError(SeqEngineError):
    """A channel executor failed in a way it could not report as an outcome."""


class ProviderRefused(ExecutorError, ConfigError):
    """A provider (the AI writer's API, say) refused the request because of our configuration
    — credentials, endpoint, model: trying again later will not help; fix the configuration."""
