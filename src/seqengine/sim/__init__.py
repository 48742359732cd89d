"""Simulation: sequences against simulated platforms on a virtual clock (R-LIB-5)."""

from seqengine.sim._leads import synthetic_leads
from seqengine.sim._platforms import (
    PlatformBehaviour,
    SimulatedExecutor,
    deliver_replies,
    route_mailbox,
)
from seqengine.sim._report import (
    ActionRecords,
    Report,
    action_record,
    attribute_replies,
    build_report,
    storage_report,
)
from seqengine.sim._simulate import DEFAULT_START, simulate, simulated_accounts

__all__ = [
    "DEFAULT_START",
    "ActionRecords",
    "PlatformBehaviour",
    "Report",
    "SimulatedExecutor",
    "action_record",
    "attribute_replies",
    "build_report",
    "deliver_replies",
    "route_mailbox",
    "simulate",
    "simulated_accounts",
    "storage_report",
    "synthetic_leads",
]
