"""The flow language's ``lookup_caller`` action (short and long forms, in voice and messaging flows) and
endpoint destinations (``endpoint:NAME@DOMAIN``) for ``dial`` and ``transfer``."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.errors import FlowValidationError
from flowengine.flow import model, read_flow

VOICE = """\
flow: greeter
kind: voice
numbers: ["+19195551212"]
initial: a
states:
  a:
    do:
      - answer
      - lookup_caller: caller_name
      - lookup_caller: {{into: agent_name, number: "+19195550100"}}
    on:
      lookup.done: b
      lookup.error: b
  b:
    do:
      - speak: "Hello {{{{ caller_name }}}} and {{{{ agent_name }}}}"
      - {destination}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    return path


def test_both_forms_of_lookup_caller_build_and_set_their_variables(tmp_path: Path) -> None:
    flow = read_flow(write(tmp_path, VOICE.format(destination="hangup")))
    short, long = flow.states["a"].actions[1:]
    assert short == model.LookupCaller(into="caller_name", pos=short.pos)
    assert (long.into, long.number) == ("agent_name", "+19195550100")  # type: ignore[union-attr]
    assert short.pos.line == 9


@pytest.mark.parametrize(
    "destination",
    [
        'dial: {to: "endpoint:frontdesk@office", as: desk}',
        'transfer: "endpoint:frontdesk@office"',
        'transfer: {to: "endpoint:{{ caller_name }}@office"}',
    ],
)
def test_an_endpoint_by_name_is_a_destination(tmp_path: Path, destination: str) -> None:
    read_flow(write(tmp_path, VOICE.format(destination=destination)))


def test_an_endpoint_without_its_domain_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(FlowValidationError) as caught:
        read_flow(write(tmp_path, VOICE.format(destination='transfer: "endpoint:frontdesk"')))
    [error] = caught.value.errors
    assert (error.line, error.column) == (17, 19)
    assert "an endpoint:NAME@DOMAIN" in error.message


def test_a_messaging_flow_can_look_up_the_texter(tmp_path: Path) -> None:
    text = """\
flow: texter
kind: messaging
numbers: ["+19195551212"]
initial: a
states:
  a:
    on:
      message: {do: [{lookup_caller: who}], goto: b}
  b:
    on:
      lookup.done: {do: [{reply: "Hi {{ who or 'there' }}"}], goto: end}
"""
    flow = read_flow(write(tmp_path, text))
    assert flow.kind == "messaging"


def test_lookup_caller_needs_a_variable_name(tmp_path: Path) -> None:
    text = VOICE.format(destination="hangup").replace(
        "lookup_caller: caller_name", "lookup_caller: {number: '+1'}"
    )
    with pytest.raises(FlowValidationError) as caught:
        read_flow(write(tmp_path, text))
    assert any(error.line == 9 for error in caught.value.errors)
