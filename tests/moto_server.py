"""moto's server made fit for tests that write a lot: one request at a time (moto's backends
are not thread-safe — a transaction snapshots and restores whole tables — while DynamoDB is),
and without moto's quadratic paths (a deep copy of the whole table before every transaction, a
sort of every item for every Query).

Used in-process by tests/store (``serial_moto_server``, ``cheap_moto_snapshots``) and as its
own process by the multi-process tests: ``python -m tests.moto_server PORT``.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
import threading
import types
from collections import defaultdict
from collections.abc import Callable
from typing import Any


def serial_moto_server() -> type[Any]:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):  # type: ignore[misc]
        """moto's server, one request at a time."""

        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock()

            def serial(environ: Any, start_response: Any) -> Any:
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(
                self._ip_address, self._port, serial, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer


def cheap_moto_snapshots(setattr_: Callable[[Any, str, Any], None]) -> None:
    """moto deep-copies a whole table before each transaction (to roll it back): quadratic
    over a test. The store's transactions only put and delete whole items, so copying the
    table's item maps is an equivalent snapshot. moto's Query sorts every item of the table to
    find one item collection: look at that collection only (same result)."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            snapshot = copy.copy(value)
            snapshot.items = defaultdict(
                dict, {h: dict(r) if isinstance(r, dict) else r for h, r in value.items.items()}
            )
            return snapshot
        return copy.deepcopy(value, memo)

    setattr_(models, "copy", types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy))
    query = Table.query
    signature = inspect.signature(query)

    def one_collection(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        hash_key = bound.get("hash_key")
        if bound.get("index_name") or hash_key is None or not self.range_key_attr:
            return query(self, *args, **kwargs)
        collection = self.items.get(hash_key, {})
        self.all_items = lambda: sorted(collection.values(), key=lambda i: i.range_key)
        try:
            return query(self, *args, **kwargs)
        finally:
            del self.all_items

    setattr_(Table, "query", one_collection)


def main() -> None:
    port = int(sys.argv[1])
    if os.environ.get("RITORNELLO_MOTO_CHEAP", "1") != "0":
        cheap_moto_snapshots(setattr)
    server = serial_moto_server()(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
