"""seqengine_x: the X (API v2) channel — Like, Follow, DM and conditions.

Installed with ``pip install "seqengine[x]"`` and found by ``seqengine run`` through the
``seqengine.executors`` entry point ``x``. See ``docs/channels/x.md``.
"""

from __future__ import annotations

from seqengine_x._client import TokenSink, XClient
from seqengine_x._config import DEFAULT_X_URL, XConfig
from seqengine_x._errors import XApiError, XErrorKind, classify
from seqengine_x._executor import XExecutor
from seqengine_x._facts import XFacts

__all__ = [
    "DEFAULT_X_URL",
    "TokenSink",
    "XApiError",
    "XClient",
    "XConfig",
    "XErrorKind",
    "XExecutor",
    "XFacts",
    "classify",
]
