"""The server's log lines: JSON with level, event and an ISO 8601 UTC timestamp; exceptions rendered; one
write per line."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import structlog

from flowengine.server import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure_logging("json", "info", out)
    yield out
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_level_event_fields_and_a_utc_timestamp(stream: io.StringIO) -> None:
    before = datetime.now(UTC)
    structlog.get_logger("t").info("session.started", session_id="s-1", flow="ivr")
    [line] = _lines(stream)
    assert {k: line[k] for k in ("event", "level", "session_id", "flow")} == {
        "event": "session.started",
        "level": "info",
        "session_id": "s-1",
        "flow": "ivr",
    }
    stamp = str(line["timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((when - before).total_seconds()) < 5


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(1_700_000_000.0, "2023-11-14T22:13:20.000000Z", id="whole-second"),
        pytest.param(1_700_000_000.25, "2023-11-14T22:13:20.250000Z", id="fraction"),
        pytest.param(1_700_000_001.5, "2023-11-14T22:13:21.500000Z", id="next-second"),
        pytest.param(1_700_000_000.75, "2023-11-14T22:13:20.750000Z", id="back-again"),
    ],
)
def test_the_timestamp_follows_the_clock_across_seconds(
    monkeypatch: pytest.MonkeyPatch, now: float, expected: str
) -> None:
    monkeypatch.setattr(logs.time, "time", lambda: now)
    assert logs._timestamp(None, "info", {})["timestamp"] == expected


def test_an_exception_is_rendered_into_the_line(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("the store broke")
    except RuntimeError:
        structlog.get_logger("t").exception("request.failed", path="/x")
    [line] = _lines(stream)
    assert line["level"] == "error"
    assert "RuntimeError: the store broke" in str(line["exception"])
    assert "exc_info" not in line


class _Writes(io.StringIO):
    """A stream that records each ``write`` call (each is a system call on a stream that writes through)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_each_line_is_one_write_with_its_newline() -> None:
    out = _Writes()
    logs.configure_logging("json", "info", out)
    try:
        structlog.get_logger("test").info("session.started", session_id="s-1")
        structlog.get_logger("test").info("session.ended", session_id="s-1")
    finally:
        structlog.reset_defaults()

    assert len(out.calls) == 2
    assert all(call.endswith("}\n") and call.count("\n") == 1 for call in out.calls)
