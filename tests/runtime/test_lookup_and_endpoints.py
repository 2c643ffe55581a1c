"""The engine's ``lookup_caller`` (a CNAM lookup into a variable, then ``lookup.done`` or ``lookup.error``)
and ``dial``/``transfer`` to SIP endpoints by name (``endpoint:NAME@DOMAIN``)."""

from __future__ import annotations

from flowengine.flow import model as m
from flowengine.runtime import commands as cmd

from .support import OURS, THEIRS, Driver, say, tagless

P = m.Prompt
T = m.Transition


def _greeter(**lookup: str) -> m.Flow:
    return m.Flow(
        name="greeter",
        kind="voice",
        initial="a",
        numbers=(OURS,),
        states={
            "a": m.State(
                "a",
                actions=(m.Answer(), m.LookupCaller(into="who", **lookup)),
                on={
                    "lookup.done": (T("known", when="event.found"), T("stranger")),
                    "lookup.error": (T("broken"),),
                },
            ),
            "known": m.State("known", actions=(m.Speak(prompt=P(text="Hello {{ who|title }}")),)),
            "stranger": m.State("stranger", actions=(m.Speak(prompt=P(text="Hello [{{ who }}]")),)),
            "broken": m.State("broken", actions=(m.Speak(prompt=P(text="Hello {{ event.status }}")),)),
        },
    )


class TestLookupCaller:
    def test_the_lookup_asks_for_the_callers_number_and_the_name_fills_the_variable(self) -> None:
        driver = Driver({"greeter": _greeter()})
        lines = driver.incoming()
        assert lines == ['POST /calls/c-caller {"state":"active"}', f"lookup {THEIRS}"]
        lookup = driver.pending_of(cmd.LookupCaller)
        body = {"name": "JANE DOE", "number": THEIRS, "created": "x", "updated": "x"}
        assert tagless(driver.http(lookup, 200, body)) == [say("Hello Jane Doe")]
        assert driver.session.vars["who"] == "JANE DOE"

    def test_a_number_without_a_name_is_done_with_an_empty_name(self) -> None:
        driver = Driver({"greeter": _greeter()})
        driver.incoming()
        lookup = driver.pending_of(cmd.LookupCaller)
        assert tagless(driver.http(lookup, 404, error="cnam-not-found: no name")) == [say("Hello []")]
        assert driver.session.vars["who"] == ""

    def test_a_failed_lookup_is_a_lookup_error_with_its_status(self) -> None:
        driver = Driver({"greeter": _greeter()})
        driver.incoming()
        lookup = driver.pending_of(cmd.LookupCaller)
        assert tagless(driver.http(lookup, 503, error="unavailable")) == [say("Hello 503")]
        assert "who" not in driver.session.vars

    def test_the_number_is_a_template(self) -> None:
        driver = Driver({"greeter": _greeter(number="{{ call.to }}")})
        assert driver.incoming()[1] == f"lookup {OURS}"


def _router(action: m.ActionType) -> m.Flow:
    return m.Flow(
        name="router",
        kind="voice",
        initial="a",
        numbers=(OURS,),
        vars={"desk": "frontdesk"},
        states={"a": m.State("a", actions=(m.Answer(), action))},
    )


class TestEndpoints:
    def test_dial_calls_an_endpoint_at_its_sip_uri(self) -> None:
        driver = Driver({"router": _router(m.Dial(to="endpoint:{{ vars.desk }}@office", role="desk"))})
        dial = driver.incoming()[1]
        assert dial.startswith("POST /calls ")
        assert '"to":"sip:frontdesk@office.bwapp.bwsipp.io"' in dial

    def test_transfer_to_an_endpoint_and_other_destinations_unchanged(self) -> None:
        driver = Driver({"router": _router(m.Transfer(to="endpoint:frontdesk@office"))})
        assert '"transferTo":"sip:frontdesk@office.bwapp.bwsipp.io"' in driver.incoming()[1]
        driver = Driver({"router": _router(m.Transfer(to="sip:agent@pbx.example.com"))})
        assert '"transferTo":"sip:agent@pbx.example.com"' in driver.incoming()[1]

    def test_sip_address_of_a_destination(self) -> None:
        assert m.sip_address("endpoint:alice@office") == "sip:alice@office.bwapp.bwsipp.io"
        assert m.sip_address("+19195550100") == "+19195550100"
