"""One module per workload, each with ``NAME`` and ``run(opts) -> list[Row]``; ``ALL`` in the
order ``make bench`` runs them."""

from benchmarks.workloads import (
    counter,
    embedded,
    greet,
    greet_limited,
    proxy,
    recovery,
    sleepers,
    ten,
)

ALL = {m.NAME: m for m in (greet, ten, counter, sleepers, recovery, embedded, proxy, greet_limited)}

__all__ = ["ALL"]
