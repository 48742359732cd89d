"""Deterministic randomness without hidden state.

Every draw is a pure function of a seed and a key: ``unit(seed, "action-17", "read")`` gives
the same float in every process, on every platform and in every Python version, so a crashed
worker that replays a step makes the same choices, and a simulation is reproducible from its
seed alone. Python's ``hash()`` is salted per process and ``random.Random`` carries state, so
neither is used.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from typing import Any

__all__ = ["chance", "drawer", "randint", "uniform", "unit"]

# Domain separation: a different seqengine use of blake2b never collides with these draws.
_PERSON = b"seqengine.rand"
_TWO_POW_MINUS_53 = 2.0**-53


def _encode(part: str | int) -> bytes:
    # Type tag and length prefix, so ("ab", "c") and ("a", "bc"), or 1 and "1", differ.
    if isinstance(part, str):
        data = part.encode("utf-8", "surrogatepass")
        tag = b"s"
    elif isinstance(part, int):
        data = str(int(part)).encode("ascii")
        tag = b"i"
    else:
        msg = f"random key parts must be str or int, got {type(part).__name__}: {part!r}"
        raise TypeError(msg)
    return tag + len(data).to_bytes(4, "big") + data


# Encodings of short str parts: mostly the fixed purposes ("place", "read", "next-day"), which
# every draw repeats. Bounded, so arbitrary short keys cannot grow it without limit.
_WORDS: dict[str, bytes] = {}
_WORD_LEN = 16
_WORDS_MAX = 1024


@functools.lru_cache(maxsize=64)
def _seeded(seed: int) -> Any:
    """A hasher that has already absorbed the seed (copying it is cheaper than re-hashing)."""
    return hashlib.blake2b(_encode(seed), digest_size=8, person=_PERSON)


def unit(seed: int, *key: str | int) -> float:
    """Return a float in [0, 1) determined by ``seed`` and ``key``.

    Args:
        seed: the simulation's or workspace's seed.
        key: parts naming the draw (action id, purpose, attempt, ...).

    Returns:
        A float with 53 random bits, uniform on [0, 1).
    """
    hasher = _seeded(seed).copy()
    for part in key:
        # Hot path for the common str part; _encode gives the same bytes for every type.
        if type(part) is str:
            encoded = _WORDS.get(part)
            if encoded is None:
                data = part.encode("utf-8", "surrogatepass")
                encoded = b"s" + len(data).to_bytes(4, "big") + data
                if len(part) <= _WORD_LEN and len(_WORDS) < _WORDS_MAX:
                    _WORDS[part] = encoded
            hasher.update(encoded)
        else:
            hasher.update(_encode(part))
    digest = hasher.digest()
    return (int.from_bytes(digest, "big") >> 11) * _TWO_POW_MINUS_53


def keyed(seed: int, key: str) -> Any:
    """A hasher that has absorbed ``seed`` and ``key``: :func:`unit_after` then draws
    ``unit(seed, key, part)`` for several parts, hashing the seed and the key once."""
    data = key.encode("utf-8", "surrogatepass")
    hasher = _seeded(seed).copy()
    hasher.update(b"s" + len(data).to_bytes(4, "big") + data)
    return hasher


def unit_after(hasher: Any, part: str) -> float:
    """``unit(seed, key, part)`` for a hasher made by :func:`keyed` (which it leaves as it
    is)."""
    hasher = hasher.copy()
    encoded = _WORDS.get(part)
    if encoded is None:
        encoded = _encode(part)
    hasher.update(encoded)
    return (int.from_bytes(hasher.digest(), "big") >> 11) * _TWO_POW_MINUS_53


def drawer(seed: int, purpose: str) -> Callable[[str], float]:
    """``lambda key: unit(seed, key, purpose)``, for many draws of one purpose in a row.

    The seed and the purpose are encoded once; each draw then hashes only its own key.
    """
    seeded = _seeded(seed)
    tail = _encode(purpose)

    def draw(key: str) -> float:
        data = key.encode("utf-8", "surrogatepass")
        hasher = seeded.copy()
        hasher.update(b"s" + len(data).to_bytes(4, "big") + data)
        hasher.update(tail)
        return (int.from_bytes(hasher.digest(), "big") >> 11) * _TWO_POW_MINUS_53

    return draw


def uniform(seed: int, lo: float, hi: float, *key: str | int) -> float:
    """Return a float in [lo, hi) (``lo`` when ``lo == hi``) determined by seed and key.

    Raises:
        ValueError: ``hi < lo``.
    """
    if hi < lo:
        msg = f"uniform: hi ({hi}) is below lo ({lo})"
        raise ValueError(msg)
    if hi == lo:
        return float(lo)
    value = lo + (hi - lo) * unit(seed, *key)
    # Float rounding can reach ``hi`` when u is just below 1.
    return min(value, math.nextafter(hi, -math.inf))


def randint(seed: int, lo: int, hi: int, *key: str | int) -> int:
    """Return an int in [lo, hi], both ends included, determined by seed and key.

    Raises:
        ValueError: ``hi < lo``.
    """
    if hi < lo:
        msg = f"randint: hi ({hi}) is below lo ({lo})"
        raise ValueError(msg)
    return min(lo + math.floor(unit(seed, *key) * (hi - lo + 1)), hi)


def chance(seed: int, p: float, *key: str | int) -> bool:
    """Return True with probability ``p``, determined by seed and key.

    ``p <= 0`` is never true and ``p >= 1`` always is.
    """
    return unit(seed, *key) < p
