"""Simulation speed: the LinkedIn default flow over growing lead counts for 30 virtual days.

Run: ``python bench/simulate.py [N ...] [--backend memory|sqlite ...]`` (default: 1000 10000,
both backends). Prints seconds, actions, peak memory per size, and per backend the time ratio
between consecutive sizes (linear growth: 10× leads should take ≤ 11× the time). The issue's
target is 100k leads in ≤ 60 s and ≤ 1.5 GB.

Each size runs in a fresh process, so the peak memory printed is that run's own. CPU seconds
are printed beside wall seconds: on a shared machine they are the steadier figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument(
        "--backend", action="append", choices=("memory", "sqlite"), help="default: both"
    )
    parser.add_argument("--one", nargs=2, metavar=("N", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
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
