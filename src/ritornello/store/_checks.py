"""Checks every backend runs on a commit unit before writing anything."""

from __future__ import annotations

from ritornello.store._records import CommitUnit


def check_unit(unit: CommitUnit) -> None:
    """Raise ValueError if ``unit`` is malformed (a caller bug, not a conflict)."""
    for write in unit.invocations:
        expect = write.expect_version
        if expect is not None and write.record.version != expect + 1:
            raise ValueError(
                f"invocation {write.record.id}: record.version {write.record.version} must be "
                f"expect_version + 1 = {expect + 1}"
            )
    for service, key, name, value in unit.state:
        if name is None and value is not None:
            raise ValueError(f"state of {service}/{key}: a value needs a name")
