"""Public test helpers: the storage conformance suite and the backend agreement machine.

Use them from your own tests (they need ``pytest`` and ``hypothesis``)::

    from seqengine.testing.conformance import StorageConformance
    from seqengine.testing.stateful import agreement_machine

The submodules are imported on first use, so importing ``seqengine.testing`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["StorageConformance", "agreement_machine"]

_LAZY = {
    "StorageConformance": "seqengine.testing.conformance",
    "agreement_machine": "seqengine.testing.stateful",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'seqengine.testing' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
