"""A callback's de-duplication key: the same for the same callback, ordered by the event's time."""

from __future__ import annotations

from flowengine.server.dispatcher import _dedup_key

ANSWER = {
    "eventType": "answer",
    "callId": "c-1",
    "callState": "active",
    "time": "2012-11-14T16:29:35.427Z",
}


def test_the_same_callback_gets_the_same_key_whatever_the_order_of_its_fields() -> None:
    reordered = dict(reversed(list(ANSWER.items())))

    assert _dedup_key(ANSWER) == _dedup_key(reordered)


def test_callbacks_differing_in_any_field_get_different_keys() -> None:
    keys = {
        _dedup_key(ANSWER),
        _dedup_key({**ANSWER, "callId": "c-2"}),
        _dedup_key({**ANSWER, "callState": "completed"}),
        _dedup_key({**ANSWER, "time": "2012-11-14T16:29:35.428Z"}),
        _dedup_key({**ANSWER, "tag": "x"}),
    }

    assert len(keys) == 5


def test_keys_start_with_the_digits_of_the_time_and_sort_by_it() -> None:
    times = ["2012-11-14T16:29:35.427Z", "2012-11-14T16:29:35.500Z", "2012-11-14T16:30:01.001Z"]
    keys = [_dedup_key({**ANSWER, "callId": f"c-{9 - n}", "time": t}) for n, t in enumerate(times)]

    assert keys[0].startswith("cb:20121114162935427:")
    assert keys == sorted(keys)


def test_a_callback_without_a_time_gets_a_longer_digest() -> None:
    without = {key: value for key, value in ANSWER.items() if key != "time"}

    key = _dedup_key(without)

    assert key.startswith("cb:")
    assert len(key) == 3 + 24
    assert _dedup_key({**without, "time": 17}) != key  # a time that is not text: in the digest only


def test_a_long_time_is_cut_in_the_key_but_counts_in_full() -> None:
    first = _dedup_key({**ANSWER, "time": "1" * 5000 + "a"})
    second = _dedup_key({**ANSWER, "time": "1" * 5000 + "b"})

    assert len(first) < 64
    assert first != second


def test_a_time_beyond_ascii_keeps_its_other_characters() -> None:
    key = _dedup_key({"eventType": "speak", "time": "2012-11-14T16:21:59.616Z·東京"})

    assert key.startswith("cb:20121114162159616·東京:")
