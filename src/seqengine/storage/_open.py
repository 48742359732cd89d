"""Opening a storage backend from a URL, through the ``seqengine.storage`` entry points.

The URL's scheme names the entry point (``memory``, ``sqlite``, ``postgresql``, or one a
third-party package registers); the class it points at builds itself with ``from_url``.
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from seqengine._exceptions import ConfigError, PluginError
from seqengine.storage._protocol import Storage

__all__ = ["ENTRY_POINT_GROUP", "check_workspace", "open_storage"]

#: The entry-point group storage backends register under.
ENTRY_POINT_GROUP = "seqengine.storage"

# Common spellings of a scheme that mean the same backend.
_ALIASES = {"postgres": "postgresql", "sqlite3": "sqlite"}
# Which extra brings in a bundled backend's dependencies.
_EXTRAS = {"postgresql": "postgres"}
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}$")


def check_workspace(workspace: str) -> str:
    """Return ``workspace`` if it is a valid workspace name, else raise ConfigError."""
    if not isinstance(workspace, str) or not _WORKSPACE.match(workspace):
        msg = (
            f"workspace {workspace!r} is not valid; use 1 to 100 letters, digits and _ . : @ + - "
            "starting with a letter or digit"
        )
        raise ConfigError(msg)
    return workspace


def _backends() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def open_storage(url: str, workspace: str = "default") -> Storage:
    """Open the storage a URL names, bound to ``workspace``.

    ``memory://`` is a fresh in-process store; ``sqlite:///relative/path.db`` and
    ``sqlite:////absolute/path.db`` a SQLite file; ``postgresql://user@host/db`` a PostgreSQL
    database (needs ``pip install "seqengine[postgres]"``).

    Raises:
        PluginError: no backend is registered for the URL's scheme, or its module cannot be
            imported (the message says what to install).
        ConfigError: the workspace name is not valid.
        StorageError: the backend cannot open the URL.
    """
    check_workspace(workspace)
    scheme, sep, _ = url.partition("://")
    scheme = scheme.strip().lower()
    if not sep or not scheme:
        msg = f"storage URL {url!r} has no scheme; use e.g. 'sqlite:///seqengine.db' or 'memory://'"
        raise PluginError(msg)
    name = _ALIASES.get(scheme, scheme)
    backends = _backends()
    ep = backends.get(name)
    if ep is None:
        known = ", ".join(f"{n}://" for n in sorted(backends)) or "none"
        msg = (
            f"no storage backend for scheme {scheme!r} (in {url!r}); known schemes: {known}. "
            f"A third-party backend registers under the {ENTRY_POINT_GROUP!r} entry-point group"
        )
        raise PluginError(msg)
    cls = _load(ep)
    from_url = getattr(cls, "from_url", None)
    if not callable(from_url):
        msg = (
            f"storage backend {name!r} ({ep.value}{_origin(ep)}) has no from_url(url, workspace) "
            "classmethod; a backend class must define one"
        )
        raise PluginError(msg)
    storage = from_url(url, workspace)
    if not isinstance(storage, Storage):
        msg = (
            f"storage backend {name!r} ({ep.value}{_origin(ep)}) returned {type(storage).__name__},"
            " which does not implement seqengine.storage.Storage"
        )
        raise PluginError(msg)
    return storage


def _load(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except ImportError as exc:
        extra = _EXTRAS.get(ep.name)
        module = ep.value.partition(":")[0]
        if extra is not None and not (exc.name or "").startswith(module):
            hint = f'install its dependencies with: pip install "seqengine[{extra}]"'
        elif ep.dist is not None:
            hint = f"reinstall the package that provides it ({ep.dist.name})"
        else:
            hint = "check that the package providing it is installed"
        msg = f"storage backend {ep.name!r} ({ep.value}) could not be imported: {exc}; {hint}"
        raise PluginError(msg) from exc
    except Exception as exc:
        msg = f"storage backend {ep.name!r} ({ep.value}{_origin(ep)}) failed to load: {exc}"
        raise PluginError(msg) from exc


def _origin(ep: EntryPoint) -> str:
    return f", from {ep.dist.name}" if ep.dist is not None else ""
