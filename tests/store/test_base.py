"""``SessionRecord``: the snapshot as stored, and decoded on demand."""

from __future__ import annotations

import pytest

from flowengine.errors import StoreError
from flowengine.store.base import SessionRecord


def _record(text: bytes | str) -> SessionRecord:
    return SessionRecord("s-1", text, 1, (), 0.0)


def test_the_snapshot_is_decoded_at_each_access_into_a_new_object() -> None:
    record = _record(b'{"state": "menu"}')
    first = record.snapshot
    first["state"] = "changed"
    assert record.snapshot == {"state": "menu"}
    assert _record('{"n": 1}').snapshot == {"n": 1}


@pytest.mark.parametrize(("text", "message"), [(b"{broken", "stored JSON is corrupt"), (b"[1]", "is a list")])
def test_a_corrupt_snapshot_is_a_store_error_naming_the_session(text: bytes, message: str) -> None:
    with pytest.raises(StoreError, match=f"session 's-1' snapshot: .*{message}"):
        _ = _record(text).snapshot
