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
import io
import logging
import os
import sys
import threading
import types
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
                # the body is read before the lock: urllib3 sends a request's headers and its
                # body in two writes, and a client stopped between them (SIGSTOP in the
                # takeover tests) would otherwise hold the lock, and every other client, until
                # it resumed; DynamoDB is not stalled by one slow client
                length = environ.get("CONTENT_LENGTH")
                if length and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", ""):
                    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(
                self._ip_address, self._port, serial, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer


def cheap_moto_snapshots(setattr_: Callable[[Any, str, Any], None]) -> None:
    """moto deep-copies a whole table before each transaction (once per item in it), to roll
    it back: linear in the table per transaction, so a long test slows down as the table
    grows (a ten-minute soak: 30% of moto's time copying, and leases lapsing behind it). A
    transaction here saves the items it names instead, and puts them back if it fails (what
    moto's rollback would leave). moto's Query sorts every item of the table to find one item
    collection: look at that collection only; and a Query of an index sorts every item before
    it picks those with the index's key: pick them first, unsorted (moto sorts what it picked
    by the index's key anyway). Same results."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            return value  # ``touched_only`` restores what the transaction changed
        return copy.deepcopy(value, memo)

    setattr_(models, "copy", types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy))
    transact = DynamoDBBackend.transact_write_items

    def touched_only(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, item before)
        for entry in transact_items:
            for op_type, op in entry.items():
                table = self.tables.get(op.get("TableName"))
                attrs = op.get("Item") if op_type == "Put" else op.get("Key")
                if table is None or not attrs or table.hash_key_attr not in attrs:
                    continue
                hash_value = DynamoType(attrs[table.hash_key_attr])
                if table.range_key_attr is None:
                    saved.append((table, hash_value, None, table.items.get(hash_value)))
                    continue
                if table.range_key_attr not in attrs:
                    continue
                range_value = DynamoType(attrs[table.range_key_attr])
                before = table.items.get(hash_value, {}).get(range_value)
                saved.append((table, hash_value, range_value, copy.deepcopy(before)))
        try:
            transact(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, before in reversed(saved):
                if range_value is None:
                    if before is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = before
                elif before is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = before
            raise

    setattr_(DynamoDBBackend, "transact_write_items", touched_only)
    query = Table.query
    signature = inspect.signature(query)

    def one_collection(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        hash_key = bound.get("hash_key")
        if bound.get("index_name"):  # moto then filters and sorts what all_items gives
            conditions = list(bound.get("hash_key_conditions") or ())
            if not conditions:
                return query(self, *args, **kwargs)

            def matching() -> list[Any]:  # unsorted: the index's own sort follows
                rows = (
                    (c.values() for c in self.items.values())
                    if self.range_key_attr
                    else ((i,) for i in self.items.values())
                )
                return [
                    item
                    for row in rows
                    for item in row
                    if all(_has(item, name, value) for name, value in conditions)
                ]

            self.all_items = matching
        elif hash_key is None or not self.range_key_attr:
            return query(self, *args, **kwargs)
        else:
            collection = self.items.get(hash_key, {})
            self.all_items = lambda: sorted(collection.values(), key=lambda i: i.range_key)
        try:
            return query(self, *args, **kwargs)
        finally:
            del self.all_items

    setattr_(Table, "query", one_collection)


def _has(item: Any, name: str, value: Any) -> bool:
    found = item.attrs.get(name)
    return found is not None and bool(found == value)


def main() -> None:
    port = int(sys.argv[1])
    if os.environ.get("RITORNELLO_MOTO_CHEAP", "1") != "0":
        cheap_moto_snapshots(setattr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = serial_moto_server()(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
