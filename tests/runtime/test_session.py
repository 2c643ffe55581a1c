"""A session's stored form: ``to_bytes``/``from_bytes`` (what the stores keep) and ``to_json``/``from_json``."""

from __future__ import annotations

import orjson
import pytest

from flowengine.runtime.session import Session

MINIMAL = {"id": "s-1", "flow": "f", "flow_hash": "h", "kind": "voice", "state": "menu"}


def _busy_session() -> Session:
    session = Session(
        id="s-1", flow="f", flow_hash="h", kind="voice", state="menu", vars={"n": 1, "x": [1, 2.5]}
    )
    session.set_leg("caller", "c-1", "up")
    session.pending = {"s-1|g3": ["gather", "caller", "", "choice"]}
    session.note(2.0, "speak.done -> menu")
    session.started_at = 1.0
    session.updated_at = 2.0
    return session


def test_the_stored_text_restores_an_equal_session_that_shares_nothing() -> None:
    session = _busy_session()
    restored = Session.from_bytes(session.to_bytes())

    assert restored == session
    restored.vars["n"] = 2
    assert restored.legs is not None
    restored.legs["agent"] = "c-2"
    assert session.vars["n"] == 1
    assert session.legs == {"caller": "c-1"}


def test_empty_containers_are_left_out_of_the_stored_text() -> None:
    stored = orjson.loads(_busy_session().to_bytes())

    assert "timers" not in stored
    assert "program" not in stored
    assert "conference" not in stored
    assert stored["legs"] == {"caller": "c-1"}


def test_fields_left_out_take_their_defaults_and_text_may_be_str() -> None:
    session = Session.from_bytes(orjson.dumps(MINIMAL).decode())

    assert session == Session(id="s-1", flow="f", flow_hash="h", kind="voice", state="menu", vars={})
    assert session.legs is None
    assert session.seq == 0
    assert session.our == ""


def test_whole_second_timestamps_come_back_as_floats() -> None:
    session = Session.from_bytes(orjson.dumps({**MINIMAL, "started_at": 5, "updated_at": 6}))

    assert session.started_at == 5.0
    assert isinstance(session.started_at, float)
    assert isinstance(session.updated_at, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "is a JSON list, expected an object"),
        (orjson.dumps({**MINIMAL, "colour": "red"}), r"unknown fields \['colour'\]"),
        (orjson.dumps({**MINIMAL, "state": 3}), "field 'state' must be a string"),
        (orjson.dumps({k: v for k, v in MINIMAL.items() if k != "flow"}), "field 'flow' must be a string"),
        (orjson.dumps({**MINIMAL, "vars": [1]}), "field 'vars' must be an object"),
        (orjson.dumps({**MINIMAL, "vars": None}), "field 'vars' must be an object"),
    ],
)
def test_a_bad_snapshot_is_refused_with_what_is_wrong(text: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Session.from_bytes(text)


def test_from_json_refuses_values_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="not plain JSON"):
        Session.from_json({**MINIMAL, "vars": {"when": object()}})  # type: ignore[dict-item]


def test_to_json_is_the_stored_text_decoded() -> None:
    session = _busy_session()

    assert session.to_json() == orjson.loads(session.to_bytes())
    assert Session.from_json(session.to_json()) == session


def test_the_stored_text_has_every_field_not_none_in_declaration_order() -> None:
    # to_bytes is generated from the field names; this is what it must equal.
    from dataclasses import fields

    for session in (_busy_session(), Session.from_bytes(orjson.dumps(MINIMAL))):
        session.bridge = None
        expected = {
            item.name: getattr(session, item.name)
            for item in fields(Session)
            if getattr(session, item.name) is not None
        }
        assert session.to_bytes() == orjson.dumps(expected)
