"""The operator console: a web UI over one storage's workspace, to serve or mount.

Install with ``pip install "seqengine[console]"``. :func:`create_app` returns an ASGI app (mount
it under any prefix of a host app); :func:`serve` runs it with uvicorn, bound to 127.0.0.1
unless a token is set. See ``docs/console.md``.

Importing this package does not import Starlette (the CLI registers ``seqengine console``
without the extra installed); ``create_app`` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqengine.runtime.console._cli import add_console_command, serve

if TYPE_CHECKING:
    from seqengine.runtime.console._app import TOKEN_ENV, Authorize, create_app

__all__ = ["TOKEN_ENV", "Authorize", "add_console_command", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("TOKEN_ENV", "Authorize", "create_app"):
        from seqengine.runtime.console import _app

        return getattr(_app, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
