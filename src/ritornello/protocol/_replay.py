"""``ReplayCache``: the nonces of signed requests an endpoint accepted, so none is accepted twice.

Standard library only. Used by ``_signing.Verifier`` once a request's signature and binding
verified (an unsigned caller cannot fill it).

Invariants: every nonce accepted with a timestamp inside the window is remembered, unless the
cache was full, in which case the oldest was forgotten and ``floor`` raised to its timestamp:
the verifier refuses every request signed at or before ``floor``, so a forgotten nonce can never
be accepted again. Nonces signed before the window (stale anyway) are dropped as the oldest
come up; entries are kept in arrival order (``OrderedDict``: forgetting the oldest is O(1)).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["ReplayCache"]


class ReplayCache:
    """The nonces of the requests an endpoint accepted within the window, oldest first."""

    __slots__ = ("_capacity", "_seen", "floor")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the replay cache must hold at least one nonce")
        self._capacity = capacity
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        #: requests signed at or before this second are refused (nonces forgotten early)
        self.floor = -1

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: bytes, ts: int, horizon: float) -> bool:
        """Remember ``nonce``; False if it is already remembered. ``horizon``: nonces signed
        before it are stale anyway, and forgotten."""
        seen = self._seen
        if nonce in seen:
            return False
        while seen and next(iter(seen.values())) < horizon:
            seen.popitem(last=False)
        if len(seen) >= self._capacity:
            _, forgotten = seen.popitem(last=False)
            self.floor = max(self.floor, forgotten)
        seen[nonce] = ts
        return True
