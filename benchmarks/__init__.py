"""The benchmark suite (docs/performance.md): ``python benchmarks/run.py`` or ``make bench``."""
