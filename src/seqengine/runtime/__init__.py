"""The runtime shell: clocks, channel executors and the worker."""

from seqengine.runtime._clock import SystemClock, VirtualClock
from seqengine.runtime._executor import (
    ExecContext,
    Executor,
    Notifier,
    available_executors,
    load_executor,
    route,
)
from seqengine.runtime._render import render_content
from seqengine.runtime._worker import Worker, WorkerStats

__all__ = [
    "ExecContext",
    "Executor",
    "Notifier",
    "SystemClock",
    "VirtualClock",
    "Worker",
    "WorkerStats",
    "available_executors",
    "load_executor",
    "render_content",
    "route",
]
