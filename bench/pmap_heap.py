"""Microbenchmark of the pure core's persistent containers: PMap set/get, PHeap push/pop.

Prints microseconds per operation at 1k, 10k and 100k elements. Each figure is the best of a few
runs of a batch of operations on a structure already holding that many elements, so it measures
the steady-state cost at that size rather than the cost of growing it.

Run: ``.venv/bin/python bench/pmap_heap.py``
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from seqengine._pheap import PHeap
from seqengine._pmap import PMap

SIZES = (1_000, 10_000, 100_000)
BATCH = 10_000
REPEAT = 5


def _best_us_per_op(run: Callable[[], None], ops: int) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def bench_pmap(n: int, rng: random.Random) -> tuple[float, float]:
    keys = [f"action-{i}" for i in range(n)]
    m: PMap[str, int] = PMap.from_items((k, i) for i, k in enumerate(keys))
    probe = [rng.choice(keys) for _ in range(BATCH)]
    fresh = [f"new-{i}" for i in range(BATCH)]

    def sets() -> None:
        # Half overwrite existing keys, half add new ones; all against the size-n map.
        for k in probe[: BATCH // 2]:
            m.set(k, -1)
        for k in fresh[: BATCH // 2]:
            m.set(k, -1)

    def gets() -> None:
        get = m.get
        for k in probe:
            get(k)

    return _best_us_per_op(sets, BATCH), _best_us_per_op(gets, BATCH)


def bench_pheap(n: int, rng: random.Random) -> tuple[float, float]:
    h: PHeap[tuple[float, int, str]] = PHeap.empty()
    for i in range(n):
        h = h.push((rng.random() * 1e6, i, f"action-{i}"))
    items = [(rng.random() * 1e6, n + i, f"new-{i}") for i in range(BATCH)]

    def pushes() -> None:
        for item in items:
            h.push(item)

    def pops() -> None:
        # Pop a run from the size-n heap, at most half of it, so the size stays within 2x of n.
        cur = h
        for _ in range(min(BATCH, n // 2)):
            _, cur = cur.pop()

    return _best_us_per_op(pushes, BATCH), _best_us_per_op(pops, min(BATCH, n // 2))


def main() -> None:
    rng = random.Random(1234)
    print(f"{'n':>8} {'set us':>8} {'get us':>8} {'push us':>8} {'pop us':>8}")
    for n in SIZES:
        set_us, get_us = bench_pmap(n, rng)
        push_us, pop_us = bench_pheap(n, rng)
        print(f"{n:>8} {set_us:>8.2f} {get_us:>8.2f} {push_us:>8.2f} {pop_us:>8.2f}")


if __name__ == "__main__":
    main()
