"""Simulation speed: the LinkedIn default flow over growing lead counts for 30 virtual days.

Run: ``python bench/simulate.py [N ...]`` (default 1000 10000). Prints seconds, actions and
peak memory per size, and the time ratio between consecutive sizes (linear growth: 10× leads
should take ≤ 11× the time). The issue's target is 100k leads in ≤ 60 s.
"""

from __future__ import annotations

import itertools
import resource
import sys
import time
from pathlib import Path

from seqengine.sim import simulate

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "linkedin-default.toml")


def main(sizes: list[int]) -> None:
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        report = simulate(EXAMPLE, leads=n, days=30, accounts=max(1, n // 100), seed=1)
        elapsed = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append((n, elapsed))
        print(
            f"{n:>7} leads: {elapsed:7.2f} s, {len(report.records):>8} actions, "
            f"{len(report.records) / elapsed:7.0f} actions/s, peak RSS {peak_mb:6.0f} MB"
        )
    for (n1, t1), (n2, t2) in itertools.pairwise(results):
        print(f"time ratio {n2}/{n1} leads: {t2 / t1:.2f} (leads ratio {n2 / n1:.0f})")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
