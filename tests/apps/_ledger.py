"""The test apps' ledger: every execution of a side effect appends one line to the file named
by RITORNELLO_TEST_LEDGER (``/dev/null`` when unset), so a test counts executions afterwards.

One ``os.write`` per line on an ``O_APPEND`` descriptor: lines of concurrent writers never
interleave, and a line written before a kill -9 is in the file.
"""

from __future__ import annotations

import os

LEDGER = os.environ.get("RITORNELLO_TEST_LEDGER", "/dev/null")


def append(*fields: object) -> None:
    """Append ``fields``, joined by spaces, as one line."""
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(map(str, fields)) + "\n").encode())
    finally:
        os.close(fd)
