"""``seqengine console``: serve the console for a SQLite file or a workspace, with uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import Any

from seqengine._exceptions import ConfigError, PluginError

__all__ = ["add_console_command", "cmd_console", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def serve(
    storage: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> None:
    """Serve the console for ``storage`` with uvicorn until interrupted.

    Raises:
        ConfigError: ``host`` is not a loopback address and no token is set (pass ``token``
            or set ``SEQENGINE_CONSOLE_TOKEN``).
    """
    import uvicorn

    from seqengine.runtime.console._app import TOKEN_ENV, create_app
    from seqengine.runtime.console._security import is_loopback

    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        msg = (
            f"the console will not listen on {host!r} without a token: anyone who reaches "
            f"that address could act on the workspace. Set {TOKEN_ENV} (at least 8 "
            "characters), or keep the default --host 127.0.0.1"
        )
        raise ConfigError(msg)
    app = create_app(storage, token=token)
    print(f"seqengine console for workspace {storage.workspace!r} on http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _open(args: argparse.Namespace) -> Any:
    if args.db:
        from seqengine.storage._files import inspect_database
        from seqengine.storage.sqlite import SQLiteStorage

        if inspect_database(args.db).kind != "seqengine":  # a text file, a directory: refused
            msg = f"--db {args.db!r}: no such database; pass the SQLite file a run or demo wrote"
            raise ConfigError(msg)

        return SQLiteStorage(args.db, args.workspace)
    from seqengine.runtime._config import load_workspace
    from seqengine.storage import open_storage

    ws = load_workspace(args.config)
    return open_storage(ws.storage_url, args.workspace)


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the operator console."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        msg = f'the console needs its extra: pip install "seqengine[console]" ({exc})'
        raise PluginError(msg) from None
    storage = _open(args)
    try:
        serve(storage, host=args.host, port=args.port)
    finally:
        storage.close()
    return 0


def add_console_command(sub: Any) -> None:
    """Register ``seqengine console`` on the CLI's subparsers."""
    p = sub.add_parser("console", help="serve the operator console (web UI)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", metavar="FILE", help="a SQLite file (from run, demo, simulate)")
    where.add_argument("--config", metavar="workspace.toml", help="a workspace's storage")
    p.add_argument("--workspace", default="default", help="the storage workspace to show")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (8765)")
    p.set_defaults(func=cmd_console)
