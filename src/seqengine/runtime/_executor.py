"""Channel executors: the protocol, their context, and loading them from entry points.

An executor turns an :class:`~seqengine.ExecuteAction` effect into platform I/O and reports
an :data:`~seqengine.Outcome`. Executors are found through the ``seqengine.executors``
entry-point group; a plugin whose dependencies are missing raises :class:`PluginError` naming
the extra to install.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import attrs

from seqengine._exceptions import ConfigError, PluginError
from seqengine._model import Platform
from seqengine._outcomes import ExecuteAction, Outcome
from seqengine.storage._protocol import Records

__all__ = [
    "EXTRAS",
    "ExecContext",
    "Executor",
    "Notifier",
    "available_executors",
    "load_executor",
    "load_notifier",
    "route",
]

GROUP = "seqengine.executors"

#: Which extra provides which built-in executor.
EXTRAS = {"x": "x", "linkedin": "linkedin", "email": "email"}


@runtime_checkable
class Notifier(Protocol):
    """Tells a person about something that needs them (R-ERR-2: a paused account)."""

    async def notify(self, account_id: str, subject: str, body: str) -> None:
        """Deliver the notification."""
        ...


@attrs.frozen
class ExecContext:
    """What an executor may use besides the request: the storage's records (the lead's facts,
    posts seen, the inbox, bounces, suppressions — :class:`~seqengine.storage.Records`, never
    the whole storage) and time."""

    storage: Records
    clock: Any
    writer: Any = None


@runtime_checkable
class Executor(Protocol):
    """Runs actions on one or more platforms."""

    platforms: frozenset[Platform]

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Carry out the action; ``content`` is the rendered text (note, DM, email)."""
        ...

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """After a crash: did the attempt with ``request.idempotency_key`` reach the platform?

        Return the outcome if the platform shows it (e.g. our message is in the conversation),
        ``Skipped``/``RetryLater`` if it clearly did not happen... or None if it cannot tell —
        the action then ends as an explicit unknown outcome, never a blind resend.
        """
        ...


def available_executors() -> dict[str, EntryPoint]:
    """Executor entry points by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_executor(name: str, **config: Any) -> Executor:
    """Load the executor registered as ``name`` and build it with ``config``.

    Raises:
        PluginError: unknown name, or its dependencies are not installed (says which extra).
    """
    found = available_executors()
    ep = found.get(name)
    if ep is None:
        extra = EXTRAS.get(name)
        hint = f'; install it with: pip install "seqengine[{extra}]"' if extra else ""
        msg = (
            f"no channel executor named {name!r} is installed{hint} "
            f"(installed: {', '.join(sorted(found)) or 'none'})"
        )
        raise PluginError(msg)
    try:
        factory = ep.load()
    except ImportError as exc:
        extra = EXTRAS.get(name, name)
        dist = ep.dist.name if ep.dist is not None else "its distribution"
        msg = (
            f"the {name!r} executor (from {dist}) needs a package that is not installed "
            f'({exc.name or exc}); install it with: pip install "seqengine[{extra}]"'
        )
        raise PluginError(msg) from exc
    try:
        executor = factory(**config)
    except TypeError as exc:
        msg = f"the {name!r} executor rejected its configuration: {exc}"
        raise PluginError(msg) from exc
    if not isinstance(executor, Executor):
        msg = (
            f"entry point {name!r} ({ep.value}) did not build an Executor "
            "(it needs platforms, execute and reconcile)"
        )
        raise PluginError(msg)
    return executor


#: The entry-point group of notifiers (R-ERR-2), each a class with
#: ``from_workspace(workspace) -> Notifier | None``.
NOTIFIER_GROUP = "seqengine.notifiers"


def load_notifier(name: str, workspace: Any) -> Notifier | None:
    """The notifier registered as ``name`` (``seqengine.notifiers``), built for ``workspace``
    (None when the workspace does not ask for it).

    Raises:
        PluginError: no notifier of that name is installed, or its dependencies are missing
            (the message says which extra to install).
    """
    found = {ep.name: ep for ep in entry_points(group=NOTIFIER_GROUP)}
    extra = EXTRAS.get(name, name)
    ep = found.get(name)
    if ep is None:
        msg = (
            f"no {name!r} notifier is installed; install it with: "
            f'pip install "seqengine[{extra}]" (installed: {", ".join(sorted(found)) or "none"})'
        )
        raise PluginError(msg)
    try:
        factory = ep.load()
    except ImportError as exc:
        msg = (
            f"the {name!r} notifier needs a package that is not installed ({exc.name or exc}); "
            f'install it with: pip install "seqengine[{extra}]"'
        )
        raise PluginError(msg) from exc
    notifier = factory.from_workspace(workspace)
    if notifier is not None and not isinstance(notifier, Notifier):
        msg = f"notifier {name!r} ({ep.value}) did not build a Notifier (it needs notify)"
        raise PluginError(msg)
    return notifier


def route(executors: Mapping[str, Executor] | Iterable[Executor]) -> dict[Platform, Executor]:
    """Map each platform to the executor that serves it (the first one listed wins)."""
    items = list(executors.values()) if isinstance(executors, Mapping) else list(executors)
    table: dict[Platform, Executor] = {}
    for executor in items:
        for platform in executor.platforms:
            table.setdefault(platform, executor)
    if not table:
        msg = "no executors given; a worker needs at least one (e.g. the 'simulated' executor)"
        raise ConfigError(msg)
    return table


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (a local fake or tunnel needs no proxy)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
