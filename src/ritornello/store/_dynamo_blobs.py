"""Values too large for a DynamoDB item (400 KB), kept in S3.

A value above ``INLINE_LIMIT`` bytes (a journal entry, a completion, a state value, a result)
is written to ``s3://BUCKET/blobs/<sha256 of the bytes>`` *before* the transaction that refers
to it, so a committed item never points at a missing object. Objects are content-addressed:
writing one twice is harmless, two items may share one, and an object whose transaction
failed is merely unreferenced. Purging an invocation does not delete its objects (they may be
shared): an S3 lifecycle rule on ``blobs/`` older than the retention period reclaims them.
"""

from __future__ import annotations

import hashlib

from ritornello.store._dynamo_client import AwsError, DynamoClient
from ritornello.store.errors import StoreError

#: Bytes of a value kept inline in its item; larger ones go to S3.
INLINE_LIMIT = 350_000
#: The invocation item holds more than its result: a smaller limit leaves room for the rest.
RESULT_INLINE_LIMIT = 300_000


class Blobs:
    """Moves large values to S3 and back."""

    def __init__(self, client: DynamoClient, bucket: str | None) -> None:
        self._client = client
        self.bucket = bucket

    def put(self, text: str, limit: int = INLINE_LIMIT) -> tuple[str | None, str | None]:
        """(inline text, None) or (None, S3 reference) for ``text``."""
        data = text.encode("utf-8", "surrogatepass")
        if len(data) <= limit:
            return text, None
        if self.bucket is None:
            raise StoreError(
                f"a value of {len(data)} bytes exceeds DynamoDB's item limit; add "
                f"bucket=NAME to the dynamodb:// store URL so large values go to S3"
            )
        digest = hashlib.sha256(data).hexdigest()
        self._client.s3_call(
            "put_object",
            Bucket=self.bucket,
            Key=_key(digest),
            Body=data,
            ContentType="application/json",
        )
        return None, digest

    def get(self, inline: str | None, ref: str | None) -> str:
        if ref is None:
            return inline if inline is not None else ""
        if self.bucket is None:
            raise StoreError(f"an item refers to S3 object {_key(ref)} but no bucket= is set")
        try:
            response = self._client.s3_call("get_object", Bucket=self.bucket, Key=_key(ref))
        except AwsError as exc:
            raise StoreError(f"s3://{self.bucket}/{_key(ref)}: {exc}") from exc
        data: bytes = response["Body"].read()
        return data.decode("utf-8", "surrogatepass")


def _key(digest: str) -> str:
    return f"blobs/{digest}"
