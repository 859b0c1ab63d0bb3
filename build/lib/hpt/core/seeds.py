"""Seeds derived from integers (the run's seed, a step, a slot), the same in every process and on every platform."""

from __future__ import annotations

import hashlib


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes, platforms and Python versions."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
