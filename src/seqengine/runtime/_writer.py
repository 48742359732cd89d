"""Which AI writer a workspace's ``[ai]`` table asks for (the runtime's choice: the OpenAI
client does network I/O, so it lives here, not in the pure ``seqengine.ai``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seqengine._exceptions import ConfigError, PluginError
from seqengine.ai import OfflineWriter, TextGenerator

__all__ = ["writer_from_config"]


def writer_from_config(
    table: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None
) -> TextGenerator:
    """The generator a workspace's ``[ai]`` table asks for; no table means offline.

    Raises:
        ConfigError: an unknown provider, or a bad ``openai`` configuration.
        PluginError: ``provider = "openai"`` without the ``ai`` extra installed.
    """
    table = table or {}
    provider = table.get("provider", "offline")
    if provider == "offline":
        return OfflineWriter()
    if provider != "openai":
        msg = f'[ai] provider must be "openai" or "offline", got {provider!r}'
        raise ConfigError(msg)
    try:
        from seqengine.runtime._openai import OpenAIWriter
    except ImportError as exc:
        msg = (
            f'[ai] provider "openai" needs {exc.name or "httpx and tenacity"} — '
            "install seqengine[ai]"
        )
        raise PluginError(msg) from None
    return OpenAIWriter.from_config(table, environ=environ)
