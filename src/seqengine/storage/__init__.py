"""Storage backends behind one protocol, chosen by URL (``memory://``, ``sqlite:///path``)."""

from seqengine.storage._protocol import Claim, Context, InboxMessage, Storage, consumed_keys

__all__ = ["Claim", "Context", "InboxMessage", "Storage", "consumed_keys"]
