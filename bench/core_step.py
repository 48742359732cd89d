"""Cost of deciding one action on the in-memory World (``step`` + ``feed``) at 1k/10k/100k leads.

Two workloads, both on the shipped LinkedIn and X default sequences (daily action limit raised
to 10,000 so the sequence limit is not the only thing happening) and one account per 20 leads
(connection limit 15/day, so some connection requests are deferred):

* ``all due``: N leads enrolled at once, then the first D decisions are timed — literally
  "enrol N leads, time D decisions". The mix of decisions differs a little between sizes (at 1k
  the run reaches later steps sooner).
* ``fixed work``: the same 1,000 active leads in every world, plus N - 1,000 leads parked a year
  ahead. Every size decides exactly the same actions, so only the size of the world differs.

A decision is one due action decided by ``step(world, clock, max_actions=1)``, plus ``feed`` of
the platform's outcome when it started (the fake platform completes everything; a third of the
"connection accepted" checks are met). The clock jumps to ``next_due``; ``next_due`` is timed
too, since a driver needs it. Each figure is the best of REPEAT runs, each on a freshly
enrolled world (the same every time) that only the driver loop holds: a driver that kept its
first world would also keep the record of every change made since (see ``World``), which
costs memory and garbage-collector time. "step alone" is the time inside ``step`` only:
deciding, without handing outcomes back.

D defaults to 5,000: on these flows 1,000 leads only yield about 5,100 decisions in all (every
flow has ended by then), so a larger fixed D cannot be used at every size.

Each run starts after ``gc.collect()`` (as pyperf does), so a full collection owed by building
the world does not land in the decisions timed. CPython's cyclic collector walks every object
in a full collection (about 7 per lead here), and runs one when the objects that survived since
the last grew by a quarter: so over a long run its cost per decision is the same at every size,
but a short timed window at 100k catches a whole one or none. ``--gc-freeze`` moves each
enrolled world out of the collector's view first (``gc.freeze()``, as a long-running host may
do after loading).

Instructions per decision (``--callgrind``): wall-clock time on a shared VM varies by up to
1.6x between minutes, instruction counts by about 1 %. This mode runs valgrind's callgrind on
``drive(build(1000)[0], N)`` for N = 1,000 and N = 3,000 decisions (``PYTHONHASHSEED=0``) and
divides the difference of the "Collected" counts by 2,000: the instructions of one decision
(``next_due`` + ``step`` + ``feed``), without building the world or starting Python. It is the
same as running, for both N::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        -c "import sys; sys.path.insert(0, 'bench'); import core_step as cs; \
            cs.drive(cs.build(1000)[0], N)"

Target (issue 13): at most 140,000 instructions per step + feed.

Run: ``.venv/bin/python bench/core_step.py [--decisions D] [--repeat R] [--gc-freeze] [--profile]``
or ``.venv/bin/python bench/core_step.py --callgrind`` (needs valgrind).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import functools
import gc
import os
import pathlib
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import attrs

from seqengine import (
    Account,
    ActionKind,
    Completed,
    ExecuteAction,
    FixedClock,
    Lead,
    LinkedInProfile,
    Sequence,
    World,
    XProfile,
    enroll,
    feed,
    load_sequence,
    new_world,
    next_due,
    step,
)

SIZES = (1_000, 10_000, 100_000)
ACTIVE = 1_000
LEADS_PER_ACCOUNT = 20
START = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)  # a Monday, inside both windows' days
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
TARGET_RATE = 20_000
TARGET_RATIO = 1.5
TARGET_INSTRUCTIONS = 140_000
CALLGRIND_LEADS = 1_000
CALLGRIND_DECISIONS = (1_000, 3_000)
BENCH = pathlib.Path(__file__).resolve().parent


def _sequences() -> tuple[Sequence, Sequence]:
    li = load_sequence(str(EXAMPLES / "linkedin-default.toml"))
    x = load_sequence(str(EXAMPLES / "x-default.toml"))
    return (
        attrs.evolve(li, daily_action_limit=10_000),
        attrs.evolve(x, daily_action_limit=10_000),
    )


def _lead(i: int) -> Lead:
    return Lead(
        id=f"lead{i}",
        first_name="Alex",
        company="Acme",
        x=XProfile(user_id=str(1000 + i), username=f"user{i}", can_dm=True),
        linkedin=LinkedInProfile(public_id=f"alex-{i}"),
    )


def build(n: int, *, parked_from: int | None = None) -> tuple[World, float]:
    """A world with ``n`` enrolled leads; leads from ``parked_from`` on start a year later."""
    li, x = _sequences()
    accounts = [Account(id=f"acc{i}") for i in range(max(1, n // LEADS_PER_ACCOUNT))]
    world = new_world(seed=42, sequences=[li, x], accounts=accounts)
    later = START + dt.timedelta(days=365)
    began = time.perf_counter()
    for i in range(n):
        seq = li if i % 2 else x
        at = later if parked_from is not None and i >= parked_from else START
        world = enroll(world, _lead(i), seq.id, accounts[i % len(accounts)].id, at)
    return world, time.perf_counter() - began


def _outcome(effect: ExecuteAction) -> Completed:
    if effect.action.kind is ActionKind.CONDITION:
        return Completed(result=int(effect.action.lead_id[4:]) % 3 == 0)
    return Completed(provider_id="p-" + effect.action.id)


Drive = tuple[World, int, int, float]


def drive(world: World, decisions: int) -> Drive:
    """Decide ``decisions`` actions; return the world, decisions made, actions started and the
    seconds spent inside ``step`` alone."""
    clock = START
    made = started = 0
    in_step = 0.0
    timer = time.perf_counter
    while made < decisions:
        due = next_due(world)
        if due is None:
            break
        clock = max(clock, due)
        now = FixedClock(clock)
        began = timer()
        world, effects = step(world, now, max_actions=1)
        in_step += timer() - began
        for effect in effects:
            if isinstance(effect, ExecuteAction):
                started += 1
                world, _ = feed(world, effect.action.id, _outcome(effect), now)
        made += 1
    return world, made, started, in_step


def best_of(
    repeat: int, make: Callable[[], tuple[World, float]], decisions: int, freeze: bool
) -> tuple[float, float, int, int, float]:
    """Best enrol time, drive time, decisions, starts and step-alone time of ``repeat`` runs."""
    enrol = best = best_step = float("inf")
    made = started = 0
    for _ in range(repeat):
        built = make()
        enrol = min(enrol, built[1])
        box = [built[0]]  # drive() gets the only reference: the first world can be freed
        del built
        gc.collect()
        if freeze:
            gc.freeze()
        began = time.perf_counter()
        _, made, started, in_step = drive(box.pop(), decisions)
        best = min(best, time.perf_counter() - began)
        best_step = min(best_step, in_step)
        gc.unfreeze()
    return enrol, best, made, started, best_step


def callgrind() -> float:
    """Instructions per decision, counted by callgrind (see the module docstring)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("--callgrind needs valgrind on PATH (e.g. apt-get install valgrind)")
    runs = []
    for n in CALLGRIND_DECISIONS:
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH)!r}); import core_step as cs; "
            f"cs.drive(cs.build({CALLGRIND_LEADS})[0], {n})"
        )
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={os.devnull}"]
        runs.append(
            subprocess.Popen(
                [*command, sys.executable, "-c", code],
                env={**os.environ, "PYTHONHASHSEED": "0"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    counts = []
    for n, run in zip(CALLGRIND_DECISIONS, runs, strict=True):
        _, err = run.communicate()
        found = re.search(r"Collected\s*:\s*(\d+)", err)
        if run.returncode or found is None:
            sys.exit(f"callgrind run with {n} decisions failed:\n{err[-2000:]}")
        counts.append(int(found.group(1)))
        print(f"  {n:>6,} decisions: {counts[-1]:>15,} instructions collected")
    per = (counts[1] - counts[0]) / (CALLGRIND_DECISIONS[1] - CALLGRIND_DECISIONS[0])
    print(
        f"instructions per decision (step + feed + next_due, {CALLGRIND_LEADS:,} leads): {per:,.0f}"
    )
    print(
        f"target <= {TARGET_INSTRUCTIONS:,} per step + feed: "
        f"{'met' if per <= TARGET_INSTRUCTIONS else 'MISSED'}"
    )
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per decision with valgrind's callgrind instead of timing",
    )
    parser.add_argument("--decisions", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the 100k all-due run")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() each enrolled world before timing (leaves out full-heap collections)",
    )
    args = parser.parse_args()
    if args.callgrind:
        callgrind()
        return

    for label, parked in (("all due", False), ("fixed work", True)):
        print(f"\n== {label}: {args.decisions:,} decisions, best of {args.repeat} ==")
        print(
            f"{'leads':>8} {'enrol us/lead':>14} {'us/decision':>12} {'decisions/s':>12} "
            f"{'started':>8} {'step alone us':>14} {'step alone/s':>13}"
        )
        per: dict[int, float] = {}
        per_step: dict[int, float] = {}
        for n in SIZES:
            enrol_s, secs, made, started, in_step = best_of(
                args.repeat,
                functools.partial(build, n, parked_from=ACTIVE if parked else None),
                args.decisions,
                args.gc_freeze,
            )
            if made < args.decisions:
                print(f"   (only {made} decisions available at {n:,} leads)")
            per[n] = secs / made * 1e6
            per_step[n] = in_step / made * 1e6
            print(
                f"{n:>8,} {enrol_s / n * 1e6:>14.1f} {per[n]:>12.1f} {made / secs:>12,.0f} "
                f"{started:>8,} {in_step / made * 1e6:>14.1f} {made / in_step:>13,.0f}"
            )
        ratio = per[SIZES[-1]] / per[SIZES[0]]
        worst = 1e6 / max(per.values())
        print(
            f"ratio {SIZES[-1]:,}/{SIZES[0]:,}: {ratio:.2f}x (target <= {TARGET_RATIO}x: "
            f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})"
        )
        print(
            f"slowest rate, step + feed: {worst:,.0f} decisions/s (target >= {TARGET_RATE:,}: "
            f"{'met' if worst >= TARGET_RATE else 'MISSED'})"
        )
        worst_step = 1e6 / max(per_step.values())
        print(
            f"slowest rate, step alone: {worst_step:,.0f} decisions/s (target >= "
            f"{TARGET_RATE:,}: {'met' if worst_step >= TARGET_RATE else 'MISSED'})"
        )

    if args.profile:
        world, _ = build(SIZES[-1])
        profiler = cProfile.Profile()
        profiler.runcall(drive, world, args.decisions)
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
        print("\n== cProfile, 100k all due: top functions by own time ==")
        stats.print_stats(20)
        stats.sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
