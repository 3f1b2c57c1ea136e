"""What the cost benchmarks share (benchmarks/dynamo_cost.py, benchmarks/lambda_cost.py): the
prices they quote, moto's server in this process with a fresh table on it, what the store's
client-side counters (``DynamoStore.stats``) grew by between two snapshots, and what the
request units among them cost.

Prices: us-east-1, on demand, since November 2024.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.moto_server import cheap_moto_snapshots, serial_moto_server  # noqa: E402

from ritornello.store.dynamodb import DynamoStore  # noqa: E402

WRU_PRICE = 0.625  # DynamoDB: USD per million write request units
RRU_PRICE = 0.125  # DynamoDB: USD per million read request units
STEP_FUNCTIONS_PER_MILLION = 25.0  # Step Functions Standard: USD per million state transitions

#: Dummy credentials and the region: boto3 pointed at moto needs them, and sends them nowhere.
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def start_moto() -> tuple[Any, str]:
    """moto's server (tests/moto_server.py: one request at a time, cheap snapshots) on a free
    loopback port, started, its request lines not logged; ``DUMMY_AWS`` set in this process's
    environment. The server (``stop()`` it) and its URL."""
    cheap_moto_snapshots(setattr)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = serial_moto_server()(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(DUMMY_AWS)
    return server, f"http://{host}:{port}"


async def open_new_table(table: str, moto_url: str, partitions: int) -> tuple[DynamoStore, str]:
    """Table ``table`` created on moto (``init``) and a store opened on it (close it); and the
    store URL, for more stores on the same table."""
    url = f"dynamodb://{table}?region=us-east-1&endpoint_url={moto_url}&partitions={partitions}"
    await DynamoStore.from_url(url).init()
    store = DynamoStore.from_url(url)
    await store.open()
    return store, url


def usd_per_million(counts: dict[str, Any]) -> float:
    """USD for a million repetitions of the work ``counts`` holds the units of (its
    ``write_units`` and ``read_units`` at on-demand prices); divided by the steps that work
    served, USD per million steps."""
    return float(counts["write_units"] * WRU_PRICE + counts["read_units"] * RRU_PRICE)


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after - before`` of two ``DynamoStore.stats.snapshot()``: the requests per operation
    (those that grew), items written, write units and read units."""
    requests = {
        op: after["requests"].get(op, 0) - before["requests"].get(op, 0) for op in after["requests"]
    }
    return {
        "requests": {op: n for op, n in requests.items() if n},
        "items_written": after["items_written"] - before["items_written"],
        "write_units": after["write_units"] - before["write_units"],
        "read_units": after["read_units"] - before["read_units"],
    }
