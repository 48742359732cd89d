"""Simulation on the pure core agrees with the worker (issue 13 item 4).

``simulate()`` in memory drives ``World`` with ``seqengine.drive`` (no worker, leases or event
loop); on any storage object it runs the worker. For generated flows, leads, behaviours and
seeds both write the same ``actions.jsonl``, with two documented narrowings:

* Daily action limits are set out of reach. Both paths apply pre-check 7 and sweep a full
  day with the same rule (``seqengine._sweep``), but the worker claims a batch of due actions
  before it decides them, and a sweep leaves the actions already claimed (leased) to be decided
  one by one, each drawing its own next-day time; the core decides one action at a time, so its
  sweep moves them all at once. Same rule, different draws for the actions of that batch.
* ``content`` is compared for completed actions only. The worker stores the rendered text when
  it starts an action (it needs it to reconcile after a crash) and keeps it when the platform
  then skips or refuses the action; the core records what the executor reports on completion.
  For an action not carried out, CONTRACT.md's "what was sent to the lead" is nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqengine import Sequence
from seqengine.sim import PlatformBehaviour, simulate
from seqengine.storage.memory import MemoryStorage
from seqengine.testing import strategies as sst

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _jsonl(report: Any, out: Path) -> list[dict[str, Any]]:
    report.write(str(out), charts=False)
    # JSON Lines end at "\n" only: a text may hold "\r", U+0085 or U+2028 (splitlines splits there).
    lines = (out / "actions.jsonl").read_bytes().decode("utf-8").split("\n")[:-1]
    records = [json.loads(line) for line in lines]
    for r in records:
        if r["status"] != "completed":
            r["content"] = None  # see the module docstring
    return records


def _both(
    tmp: Path, seqs: list[Sequence], behaviour: PlatformBehaviour | None, **kw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    unlimited = [attrs.evolve(s, daily_action_limit=10_000) for s in seqs]
    core = simulate(unlimited, behaviour=behaviour, **kw)
    worker = simulate(unlimited, behaviour=behaviour, storage=MemoryStorage("agreement"), **kw)
    return _jsonl(core, tmp / "core"), _jsonl(worker, tmp / "worker")


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    flows=st.lists(sst.sequences(max_steps=4), min_size=1, max_size=2, unique_by=lambda s: s.id),
    behaviour=st.none() | sst.behaviours(),
    leads=st.integers(0, 12),
    accounts=st.integers(1, 2),
    seed=st.integers(0, 2**32),
    days=st.integers(1, 10),
)
def test_core_and_worker_write_the_same_actions_jsonl(
    tmp_path_factory: Any,
    flows: list[Sequence],
    behaviour: PlatformBehaviour | None,
    leads: int,
    accounts: int,
    seed: int,
    days: int,
) -> None:
    tmp = tmp_path_factory.mktemp("agree")
    core, worker = _both(
        tmp, flows, behaviour, leads=leads, accounts=accounts, seed=seed, days=days
    )
    assert core == worker


def test_the_shipped_examples_agree_over_a_month(tmp_path: Path) -> None:
    from seqengine import load_sequence

    seqs = [load_sequence(str(p)) for p in sorted(EXAMPLES.glob("*.toml"))]
    core, worker = _both(tmp_path, seqs, None, leads=60, accounts=2, seed=7, days=30)
    assert len(core) > 500
    statuses = {r["status"] for r in core}
    assert {"completed", "skipped", "cancelled"} <= statuses  # not a vacuous comparison
    assert core == worker
