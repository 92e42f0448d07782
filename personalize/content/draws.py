"""Random draws for Thompson sampling: exact Beta samples, and a generator seeded per decision.

:func:`beta_draw` samples Beta(a, b) exactly with one rejection loop (R. C. H. Cheng's
algorithm BB, *Generating beta variates with nonintegral shape parameters*, CACM 21(4),
1978, as R's ``rbeta``), about a third of the work of ``random.betavariate``'s two gamma
variates, and in closed form when a parameter is 1 (a new arm's posterior is Beta(1, 1)).

:class:`DecisionRandom` is a :class:`random.Random` whose stream comes from a BLAKE2b digest:
the engine seeds one per decision with a hash of (visitor, session, slot), which is what
makes a restarted worker decide the same. Seeding the Mersenne Twister costs as much as a
whole draw; this costs one hash per eight numbers.

>>> rng = DecisionRandom(b"seed")
>>> first = [rng.random() for _ in range(10)]
>>> rng.reset(b"seed")
>>> [rng.random() for _ in range(10)] == first, all(0.0 < u < 1.0 for u in first)
(True, True)
>>> draws = [beta_draw(rng, 30.0, 70.0) for _ in range(4000)]
>>> abs(sum(draws) / len(draws) - 0.3) < 0.005
True
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
import threading

__all__ = ["DecisionRandom", "beta_draw", "decision_random"]

_FLOATS = struct.Struct(">8d")
# A number is the top 52 bits k of a 64-bit word of the block, as (k + 0.5) * 2 ** -52:
# strictly inside (0, 1), so log(u) and log(1 - u) are finite. Built for the 8 words at once
# in C: the block as one integer shifted by 12 and masked keeps each word's top 52 bits in
# its own low 52; with 0x3FF as exponent they are the doubles 1 + k * 2 ** -52, and
# subtracting 1 - 2 ** -53 (exact: both are within a factor 2) gives (k + 0.5) * 2 ** -52.
_MANTISSAS = int.from_bytes(b"\x00\x0f" + b"\xff" * 6, "big") * sum(1 << (64 * i) for i in range(8))
_ONES = 0x3FF0000000000000 * sum(1 << (64 * i) for i in range(8))
_OFFSET = 1.0 - 2.0**-53
_LOG4 = math.log(4.0)
_EXP_MAX = math.log(1.7976931348623157e308)  # exp() of more overflows
_local = threading.local()


class DecisionRandom(random.Random):
    """A :class:`random.Random` whose numbers come from BLAKE2b blocks of a seed (bytes, or
    an int as :meth:`random.Random.seed` takes): deterministic, cheap to seed again, and
    good for sampling (not for secrets). Only :meth:`random` is its own; the other methods
    (``randrange``, ``betavariate``...) are built on it by :class:`random.Random`."""

    def __init__(self, seed: bytes | int = b"") -> None:
        self._block = b""
        self._pool: list[float] = []
        super().__init__(seed)

    def seed(self, a: object = None, version: int = 2) -> None:
        """Start the stream of seed ``a`` (bytes, str or int; None: from the OS)."""
        if a is None:
            data = os.urandom(32)
        elif isinstance(a, bytes):
            data = a
        elif isinstance(a, str):
            data = a.encode()
        elif isinstance(a, int):
            data = a.to_bytes((a.bit_length() + 8) // 8, "big", signed=True)
        else:
            raise TypeError(f"DecisionRandom seeds from bytes, str or int, not {type(a)!r}")
        self.reset(data)

    def reset(self, seed: bytes) -> None:
        """Start the stream of ``seed`` again (the cheap form of :meth:`seed`)."""
        self._block = seed
        self._pool = []

    def random(self) -> float:
        """The next number, uniform in (0, 1) (never 0.0 nor 1.0)."""
        pool = self._pool
        if not pool:
            self._block = block = hashlib.blake2b(self._block, digest_size=64).digest()
            pool[:] = _doubles(block)
        return pool.pop() - _OFFSET

    def getstate(self) -> tuple[bytes, tuple[float, ...]]:  # type: ignore[override]
        return self._block, tuple(self._pool)

    def setstate(self, state: tuple[bytes, tuple[float, ...]]) -> None:  # type: ignore[override]
        self._block, pool = state
        self._pool = list(pool)


def _doubles(block: bytes) -> tuple[float, ...]:
    """1 + k * 2 ** -52 for the top 52 bits k of each 64-bit word of a 64-byte block, in
    word order (see ``_MANTISSAS``); less ``_OFFSET``, the generator's numbers."""
    bits = (int.from_bytes(block, "big") >> 12) & _MANTISSAS | _ONES
    return _FLOATS.unpack(bits.to_bytes(64, "big"))


def beta_draw(rng: random.Random, a: float, b: float) -> float:
    """A sample of Beta(``a``, ``b``) from ``rng`` (both parameters > 0)."""
    if a == 1.0 and b == 1.0:
        return rng.random()
    if a == 1.0:  # Beta(1, b): 1 - U ** (1 / b), by inversion
        return 1.0 - math.pow(rng.random(), 1.0 / b)
    if b == 1.0:
        return math.pow(rng.random(), 1.0 / a)
    if a < 1.0 or b < 1.0:
        return rng.betavariate(a, b)  # (a posterior never gets here: both are >= 1)
    small, large = (a, b) if a <= b else (b, a)
    alpha = small + large
    beta = math.sqrt((alpha - 2.0) / (2.0 * small * large - alpha))
    gamma = small + 1.0 / beta
    uniform, log, exp = rng.random, math.log, math.exp
    while True:  # Cheng's BB: accepts at least 3 times in 4, most often at the first test
        u1 = uniform()
        u2 = uniform()
        v = beta * log(u1 / (1.0 - u1))
        w = small * exp(v) if v <= _EXP_MAX else math.inf
        z = u1 * u1 * u2
        r = gamma * v - _LOG4
        s = small + r - w
        if s + 2.609438 >= 5.0 * z:
            break
        t = log(z)
        if s > t or r + alpha * log(alpha / (large + w)) >= t:
            break
    if w == math.inf:
        return 1.0 if small == a else 0.0
    return w / (large + w) if small == a else large / (large + w)


def decision_random(text: str, key: bytes) -> DecisionRandom:
    """This thread's generator, seeded with a keyed hash of ``text`` (what a decision is
    for): the same text and key give the same numbers, in any process."""
    digest = hashlib.blake2b(text.encode(), digest_size=64, key=key).digest()
    rng: DecisionRandom | None = getattr(_local, "rng", None)
    if rng is None:  # one per thread, seeded again per decision (cheaper than a new one)
        rng = _local.rng = DecisionRandom()
    rng.reset(digest)
    return rng
