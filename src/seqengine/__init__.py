"""seqengine: an embeddable engine for multi-channel outreach sequences."""

from seqengine._exceptions import *  # noqa: F403
