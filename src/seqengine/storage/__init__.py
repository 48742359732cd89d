"""Storage backends behind one protocol, chosen by URL (``memory://``, ``sqlite:///path``)."""

from seqengine.storage._open import ENTRY_POINT_GROUP, open_storage
from seqengine.storage._protocol import (
    BatchStorage,
    Catalog,
    Claim,
    Context,
    HostOperations,
    InboxMessage,
    Records,
    Storage,
    StorageBase,
    WorkQueue,
    consumed_keys,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BatchStorage",
    "Catalog",
    "Claim",
    "Context",
    "HostOperations",
    "InboxMessage",
    "Records",
    "Storage",
    "StorageBase",
    "WorkQueue",
    "consumed_keys",
    "open_storage",
]
