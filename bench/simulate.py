"""Simulation speed: the LinkedIn default flow over growing lead counts for 30 virtual days.

Run: ``python bench/simulate.py [N ...] [--backend memory|sqlite ...]`` (default: 1000 10000,
both backends). Prints seconds, actions, peak memory per size, and per backend the time ratio
between consecutive sizes (linear growth: 10× leads should take ≤ 11× the time). The issue's
target is 100k leads in ≤ 60 s and ≤ 1.5 GB.

``python bench/simulate.py --open [N ...]`` (default 10000 100000) runs the non-starving
workload of issue 13: the same flow with ``daily_action_limit = 10000``, N/100 accounts,
30 days, in memory (the pure core: ``World`` driven by ``seqengine.drive``). In the same
process it then runs a bare ``heapq`` reference loop over the same workload
(:func:`reference`: each lead's events pushed and popped in the flow's pattern, as tuples,
no checks) and prints records per CPU second for both and their ratio (target: ≤ 10×), and
the simulation's peak memory (target at 100k: ≤ 1 GB).

Each size runs in a fresh process, so the peak memory printed is that run's own. CPU seconds
are printed beside wall seconds: on a shared machine they are the steadier figure, and the
ratio of two loops timed in one process steadier still. A table at the end puts each of the
issue's targets (ratio at 10k, ratio at 100k, peak memory at 100k) next to its figure.

``python bench/simulate.py --instructions [N]`` (default 500) counts instructions instead of
time, under valgrind's callgrind (so a noisy machine does not move them): the simulation of the
non-starving workload and the reference loop, each at N and at 2N leads in a process of its
own with ``PYTHONHASHSEED=0``. Per record it prints the extra instructions over the extra
records (so imports and other fixed costs drop out) for both, and their ratio. Slow: a few
minutes.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "linkedin-default.toml")


def one(n: int, backend: str) -> dict[str, float]:
    """Simulate ``n`` leads on ``backend`` in this process; the figures."""
    from seqengine.sim import simulate

    with tempfile.TemporaryDirectory() as tmp:
        storage = "memory://" if backend == "memory" else f"sqlite:///{tmp}/sim.db"
        t0, c0 = time.perf_counter(), time.process_time()
        report = simulate(
            EXAMPLE, leads=n, days=30, accounts=max(1, n // 100), seed=1, storage=storage
        )
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": elapsed, "cpu": cpu, "actions": len(report.records), "peak_mb": peak_mb}


def reference(n: int, *, days: float = 30, seed: int = 1) -> tuple[int, float]:
    """The bare ``heapq`` loop of the same workload; (events, CPU seconds).

    Each of ``n`` leads goes through the LinkedIn default flow as tuples on one heap: the
    connection request, the acceptance check every 24 hours (at most 7 times), the DM 2 hours
    after an accepted check, the withdrawal 14 days after the request (dropped once accepted).
    Acceptance and its delay are drawn as the simulated platform draws them (same rates, same
    seeded hash). No pre-checks, windows, limits or records beyond one tuple per event.
    """
    from seqengine import _rand
    from seqengine.sim import DEFAULT_START, PlatformBehaviour

    behaviour = PlatformBehaviour()
    rate, (low, high) = behaviour.acceptance_rate, behaviour.acceptance_delay_hours
    hour, day = 3600.0, 86400.0
    start = DEFAULT_START.timestamp()
    end = start + days * day
    connect, check, dm, withdraw = 0, 1, 2, 3
    leads = [f"lead-{i:06d}" for i in range(n)]
    c0 = time.process_time()
    # Requests spread over the first working day, as the activity window spreads them.
    heap = [(start + 9 * hour + (i % 32_400), i, connect, 1) for i in range(n)]
    heapq.heapify(heap)
    accepted_at: dict[int, float] = {}
    accepted: set[int] = set()
    out: list[tuple[float, int, int, int]] = []
    while heap:
        at, i, kind, attempt = heapq.heappop(heap)
        if at >= end:
            break
        if kind == withdraw and i in accepted:
            continue
        out.append((at, i, kind, attempt))
        if kind == connect:
            lead = leads[i]
            if _rand.chance(seed, rate, lead, "connect", "yes"):
                delay = _rand.uniform(seed, low, high, lead, "connect", "delay")
                accepted_at[i] = at + delay * hour
            heapq.heappush(heap, (at + 24 * hour, i, check, 1))
            heapq.heappush(heap, (at + 14 * day, i, withdraw, 1))
        elif kind == check:
            when = accepted_at.get(i)
            if when is not None and at >= when:
                accepted.add(i)
                heapq.heappush(heap, (at + 2 * hour, i, dm, 1))
            elif attempt < 7:
                heapq.heappush(heap, (at + 24 * hour, i, check, attempt + 1))
    return len(out), time.process_time() - c0


def one_open(n: int) -> dict[str, float]:
    """The non-starving workload at ``n`` leads, then the reference loop, in this process."""
    import attrs

    from seqengine import load_sequence
    from seqengine.sim import simulate

    seq = attrs.evolve(load_sequence(EXAMPLE), daily_action_limit=10_000)
    t0, c0 = time.perf_counter(), time.process_time()
    report = simulate(seq, leads=n, days=30, accounts=max(1, n // 100), seed=1)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    events, ref_cpu = reference(n)
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "records": len(report.records),
        "peak_mb": peak_mb,
        "ref_events": events,
        "ref_cpu": ref_cpu,
    }


#: The issue's targets for the non-starving workload.
RATIO_TARGET = 10.0
PEAK_TARGET_MB = 1024.0


def run_open(sizes: list[int]) -> None:
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one-open", str(n)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        got = json.loads(out.strip().splitlines()[-1])
        sim_rate = got["records"] / got["cpu"]
        ref_rate = got["ref_events"] / got["ref_cpu"]
        got["ratio"] = ref_rate / sim_rate
        results[n] = got
        print(
            f"open {n:>7} leads: {got['records']:>8.0f} records in {got['cpu']:7.2f} s CPU "
            f"({got['seconds']:.2f} s wall) = {sim_rate:8.0f} records/s; heapq reference "
            f"{got['ref_events']:>8.0f} events in {got['ref_cpu']:.3f} s = {ref_rate:9.0f} "
            f"events/s; ratio {got['ratio']:5.1f}x (target <= {RATIO_TARGET:.0f}x); "
            f"peak RSS {got['peak_mb']:6.0f} MB",
            flush=True,
        )
    print(f"{'target (issue 13)':<32} {'measured':>10} {'target':>12}  met")
    for n, got in results.items():
        ok = "yes" if got["ratio"] <= RATIO_TARGET else "NO"
        print(
            f"{f'ratio to heapq at {n} leads':<32} {got['ratio']:>9.1f}x "
            f"{f'<= {RATIO_TARGET:.0f}x':>12}  {ok}"
        )
    for n, got in results.items():
        ok = "yes" if got["peak_mb"] <= PEAK_TARGET_MB else "NO"
        limit = f"<= {PEAK_TARGET_MB:.0f} MB" if n >= 100_000 else "(none)"
        if n < 100_000:
            ok = "-"
        print(f"{f'peak memory at {n} leads':<32} {got['peak_mb']:>7.0f} MB {limit:>12}  {ok}")


def ir_part(part: str, n: int) -> None:
    """One process counted under callgrind: ``sim`` or ``ref`` at ``n`` leads."""
    import attrs

    from seqengine import load_sequence
    from seqengine.sim import simulate

    seq = attrs.evolve(load_sequence(EXAMPLE), daily_action_limit=10_000)
    if part == "sim":
        count = len(simulate(seq, leads=n, days=30, accounts=max(1, n // 100), seed=1).records)
    else:
        count = reference(n)[0]
    print(json.dumps({"count": count}))


def _instructions(part: str, n: int) -> tuple[int, int]:
    """(instructions, records) of one ``ir_part`` process under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out_file}",
                sys.executable,
                __file__,
                "--ir-part",
                part,
                str(n),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        with open(out_file, encoding="utf-8") as fh:
            found = re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.MULTILINE)
    if found is None:
        msg = "callgrind wrote no instruction total"
        raise SystemExit(msg)
    return int(found.group(1)), json.loads(done.stdout.strip().splitlines()[-1])["count"]


def run_instructions(n: int) -> None:
    if shutil.which("valgrind") is None:
        msg = "--instructions needs valgrind (apt-get install valgrind)"
        raise SystemExit(msg)
    per: dict[str, float] = {}
    for part in ("sim", "ref"):
        small, small_count = _instructions(part, n)
        large, large_count = _instructions(part, 2 * n)
        per[part] = (large - small) / (large_count - small_count)
        print(
            f"  {part}: {n} leads {small:,} instructions / {small_count} records; "
            f"{2 * n} leads {large:,} / {large_count}",
            flush=True,
        )
    print(
        f"instructions per record (callgrind, {n} -> {2 * n} leads): simulation "
        f"{per['sim']:,.0f}; heapq reference {per['ref']:,.0f}; ratio "
        f"{per['sim'] / per['ref']:.1f}x (target <= {RATIO_TARGET:.0f}x)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument(
        "--backend", action="append", choices=("memory", "sqlite"), help="default: both"
    )
    parser.add_argument(
        "--open", action="store_true", help="the non-starving workload and its heapq reference"
    )
    parser.add_argument("--one", nargs=2, metavar=("N", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--instructions",
        nargs="?",
        const=500,
        type=int,
        metavar="N",
        help="instructions per record under callgrind, N to 2N leads (default 500)",
    )
    parser.add_argument("--one-open", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ir-part", nargs=2, metavar=("PART", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ir_part:
        ir_part(args.ir_part[0], int(args.ir_part[1]))
        return
    if args.instructions:
        run_instructions(args.instructions)
        return
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return
    if args.one_open:
        print(json.dumps(one_open(args.one_open)))
        return
    if args.open:
        run_open(args.sizes if args.sizes != [1000, 10000] else [10000, 100000])
        return
    for backend in args.backend or ["memory", "sqlite"]:
        results = []
        for n in args.sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), backend],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            got = json.loads(out.strip().splitlines()[-1])
            results.append((n, got["seconds"], got["cpu"]))
            print(
                f"{backend:>6} {n:>7} leads: {got['seconds']:7.2f} s ({got['cpu']:7.2f} s CPU), "
                f"{got['actions']:>8.0f} "
                f"actions, {got['actions'] / got['seconds']:7.0f} actions/s, "
                f"peak RSS {got['peak_mb']:6.0f} MB",
                flush=True,
            )
        for (n1, t1, c1), (n2, t2, c2) in itertools.pairwise(results):
            print(
                f"{backend:>6} time ratio {n2}/{n1} leads: {t2 / t1:.2f} (CPU {c2 / c1:.2f}) "
                f"(leads ratio {n2 / n1:.0f}; linear means at most {1.1 * n2 / n1:.0f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
