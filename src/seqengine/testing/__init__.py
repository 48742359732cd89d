"""Public test helpers: the storage conformance suite and the backend agreement machine.

Use them from your own tests (they need ``pytest`` and ``hypothesis``)::

    from seqengine.testing.conformance import StorageConformance
    from seqengine.testing.stateful import agreement_machine

The submodules are imported on first use, so importing ``seqengine.testing`` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["StorageConformance", "agreement_machine"]

if "pytest" in sys.modules:
    # Under pytest, show the suite's failed asserts with their values, as in the user's tests.
    sys.modules["pytest"].register_assert_rewrite(
        "seqengine.testing.conformance", "seqengine.testing.stateful"
    )

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
