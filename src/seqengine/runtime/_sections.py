"""Channel sections: each adapter parses its own ``[accounts.NAME]`` table.

An adapter registers a :class:`ChannelConfig` subclass under the
``seqengine.account_sections`` entry point group; the entry point's name is the key under
``[[accounts]]`` (``x``, ``linkedin``, ``email``, or a third-party channel's). The workspace
loader knows no channel: for each such key it loads the class and calls
:meth:`ChannelConfig.from_table` with a :class:`~seqengine.runtime.ConfigTable`. A key whose
channel is not installed fails when the workspace loads, naming the file, the key and the
extra to install.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, Final, Self

from seqengine._exceptions import ConfigError
from seqengine._model import Account
from seqengine.runtime._executor import EXTRAS
from seqengine.runtime._tables import ConfigTable

__all__ = ["SECTION_GROUP", "ChannelConfig", "Sections", "moved_name"]

#: The entry point group adapters register their :class:`ChannelConfig` class under.
SECTION_GROUP: Final = "seqengine.account_sections"


class ChannelConfig:
    """Base class of a channel's ``[accounts.NAME]`` configuration (one account's settings).

    A subclass (usually an ``attrs`` frozen class) implements :meth:`from_table`; it may
    override :meth:`configure` to tell the engine's :class:`~seqengine.Account` what the
    section says (e.g. the X user id), and set :attr:`workspace_table` with
    :meth:`workspace_defaults` to also accept a workspace-wide ``[NAME]`` table whose values
    each account's section starts from (``[email]``). Register the class under the
    ``seqengine.account_sections`` entry point group, named after the section key::

        [project.entry-points."seqengine.account_sections"]
        sms = "seqengine_sms:SmsConfig"
    """

    __slots__ = ()

    #: Whether the workspace may have a top-level ``[NAME]`` table for this channel.
    workspace_table: ClassVar[bool] = False
    #: One line of the section, shown when ``NAME`` is not a table (``user_id = "…"``).
    example: ClassVar[str] = 'key = "…"'

    @classmethod
    def from_table(cls, table: ConfigTable) -> Self:
        """Read and check one account's ``[accounts.NAME]`` table.

        ``table.defaults`` is what :meth:`workspace_defaults` returned. Fail with
        ``table.fail(key, "what is wrong; what to write")`` (or the table's typed readers),
        so the message names the file and the key path.

        Raises:
            ConfigError: a value is missing or wrong.
        """
        raise NotImplementedError(f"{cls.__name__}.from_table")

    @classmethod
    def workspace_defaults(cls, table: ConfigTable | None) -> Any:
        """Read the workspace's top-level ``[NAME]`` table (``None`` when it has none).

        Called once per workspace that uses the channel, before the accounts' sections; the
        result is ``ConfigTable.defaults`` of each ``[accounts.NAME]`` table and
        ``Workspace.channel_defaults[NAME]``. The default reads nothing.

        Raises:
            ConfigError: a value is missing or wrong.
        """
        return None

    def configure(self, account: Account) -> Account:
        """The engine's account with what this section tells it (default: unchanged)."""
        return account


def _entry_points() -> dict[str, EntryPoint]:
    try:
        return {ep.name: ep for ep in entry_points(group=SECTION_GROUP)}
    except Exception:  # a broken distribution's metadata must not hide the others
        return {}


class Sections:
    """The channel sections installed now (one look at the entry points per workspace load).

    Attributes:
        names: the section keys an ``[[accounts]]`` entry may have: the registered channels,
            and the built-in ones (which fail with an install hint when their extra is
            missing).
    """

    def __init__(self) -> None:
        self._found = _entry_points()
        self._loaded: dict[str, type[ChannelConfig]] = {}
        self.names: frozenset[str] = frozenset(self._found) | frozenset(EXTRAS)

    def load(self, name: str, table: ConfigTable, key: str) -> type[ChannelConfig]:
        """The :class:`ChannelConfig` class registered for section ``name``.

        ``table`` and ``key`` say where the workspace asks for it (for the message).

        Raises:
            ConfigError: no channel is registered as ``name``, its package cannot be imported
                (the message names the file, the key and ``pip install "seqengine[EXTRA]"``),
                or the entry point is not a :class:`ChannelConfig` subclass.
        """
        if name in self._loaded:
            return self._loaded[name]
        ep = self._found.get(name)
        extra = EXTRAS.get(name)
        install = f'install it with: pip install "seqengine[{extra or name}]"'
        if ep is None:
            hint = install if extra else f"install the package that provides the {name!r} channel"
            raise table.fail(key, f"needs the {name!r} channel, which is not installed; {hint}")
        try:
            loaded: object = ep.load()
        except ImportError as exc:
            missing = exc.name or str(exc)
            dist = ep.dist.name if ep.dist is not None else "its distribution"
            raise table.fail(
                key,
                f"needs the {name!r} channel (from {dist}), which needs a package that is not "
                f"installed ({missing}); {install}",
            ) from None
        if not isinstance(loaded, type) or not issubclass(loaded, ChannelConfig):
            raise ConfigError(
                f"{table.source}: {table.key(key)}: the {name!r} channel's entry point "
                f"({ep.value}) is not a seqengine.runtime.ChannelConfig subclass"
            )
        self._loaded[name] = loaded
        return loaded


def moved_name(section: str, name: str) -> Any:
    """``name`` as defined in the module of the class registered for ``section``.

    Keeps names that moved from the runtime to a channel package (``XConfig``, ``SmtpConfig``,
    …) importable from their old place, found through the entry point like any channel.

    Raises:
        ImportError: the channel is not installed, or its package cannot be imported.
    """
    ep = _entry_points().get(section)
    if ep is None:
        extra = EXTRAS.get(section, section)
        msg = (
            f"{name} belongs to the {section!r} channel, which is not installed; install it "
            f'with: pip install "seqengine[{extra}]"'
        )
        raise ImportError(msg)
    loaded = ep.load()
    return getattr(sys.modules[loaded.__module__], name)
