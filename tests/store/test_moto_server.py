"""The test harness's moto server (tests/moto_server.py) serves one request at a time, like a
lock around moto's backends; a client stalled half-way through a request must not stall the
others (DynamoDB is not), or a test that pauses an orchestrator with SIGSTOP hangs every other
process on the table."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from tests.store.conftest import moto_endpoint


def test_a_client_stopped_between_headers_and_body_stalls_nobody() -> None:
    endpoint = moto_endpoint()
    url = urlsplit(endpoint)
    stalled = socket.create_connection((url.hostname, url.port))
    try:
        # urllib3 writes a request's headers and its body separately: stop after the headers
        stalled.sendall(
            b"POST / HTTP/1.1\r\nHost: dynamodb.eu-west-1.amazonaws.com\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            b"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 2\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=testing/20261205/eu-west-1/dynamodb/"
            b"aws4_request, SignedHeaders=host, Signature=0\r\n\r\n"
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            config=Config(read_timeout=5, retries={"total_max_attempts": 1}),
        )
        assert isinstance(client.list_tables()["TableNames"], list)
        stalled.sendall(b"{}")  # the stalled one is answered once its body arrives
        stalled.settimeout(5)
        head = stalled.recv(4096)  # (signed for dynamodb: unsigned, moto guesses the service)
        assert head.startswith(b"HTTP/1.1 200 ") and b"application/x-amz-json-1.0" in head, head
    finally:
        stalled.close()
