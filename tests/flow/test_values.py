"""Durations and other small value languages."""

from __future__ import annotations

import pytest

from flowengine.flow.values import format_duration, is_template, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(5, 5.0, id="int"),
        pytest.param(2.5, 2.5, id="float"),
        pytest.param("10", 10.0, id="bare-number-string"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("5s", 5.0, id="seconds"),
        pytest.param("2m", 120.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("1h1m1s500ms", 3661.5, id="all-units"),
        pytest.param("1.5s", 1.5, id="fractional"),
    ],
)
def test_durations_parse_to_seconds(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("5 sec", "not a duration", id="words"),
        pytest.param("1s1m", "largest to smallest", id="out-of-order"),
        pytest.param("5s5s", "largest to smallest", id="repeated-unit"),
        pytest.param("", "not a duration", id="empty"),
        pytest.param(-1, "zero or more", id="negative"),
        pytest.param(True, "not a duration", id="boolean"),
    ],
)
def test_malformed_durations_say_why(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (5.0, "5s"), (90.0, "1m30s"), (3600.0, "1h"), (0.0, "0s"), (300.0, "5m")],
)
def test_durations_format_back_to_the_short_form(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_template_markers_are_recognised() -> None:
    assert is_template("Hi {{ name }}")
    assert is_template("{% if x %}y{% endif %}")
    assert not is_template("Hi {name}")
