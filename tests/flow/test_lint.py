"""Semantic checks: what the schema cannot say, each at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.flow import check_file
from flowengine.flow.lint import analyze_expression, analyze_template


@pytest.fixture
def lint(tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(text: str) -> list[str]:
        path = tmp_path / "f.yaml"
        path.write_text(text)
        return [f"{d.line}:{d.column} {d.severity} {d.code}" for d in check_file(path).diagnostics]

    return run


_VOICE = "flow: f\ninitial: a\non: {hangup: end}\nstates:\n"


class TestEventsNeverReceived:
    def test_an_event_caused_by_an_earlier_state_is_receivable(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = (
            _VOICE
            + "  a:\n    do: [{dial: {to: '+19195550100', as: agent}}]\n    on: {agent.answer: b}\n  b:\n    on: {agent.hangup: end}\n"
        )
        assert lint(text) == []

    def test_an_event_nothing_causes_is_a_warning_at_its_key(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    do: [answer]\n    on: {recording.complete: end}\n"
        assert lint(text) == ["7:10 warning never-received"]

    def test_a_leg_event_needs_a_dial_of_that_role_before(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = (
            _VOICE
            + "  a:\n    on: {speak.done: b, agent.answer: end}\n  b:\n    do: [{dial: {to: '+19195550100', as: agent}}]\n    on: {agent.answer: end}\n"
        )
        assert lint(text) == ["6:10 warning never-received", "6:25 warning never-received"]

    def test_caller_answer_and_hangup_can_always_arrive_in_a_voice_flow(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    on: {answer: end, hangup.busy: end, timeout: end}\n"
        assert lint(text) == []

    def test_voice_events_never_happen_in_a_messaging_flow(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = "flow: f\nkind: messaging\ninitial: a\nstates:\n  a:\n    on: {message: end, dtmf: end}\n"
        assert lint(text) == ["6:24 warning never-received"]

    def test_a_handler_prefix_is_receivable_when_any_event_under_it_is(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    do: [gather]\n    on: {gather: end}\n"
        assert lint(text) == []


class TestWaysOut:
    def test_a_voice_state_left_only_by_hanging_up_is_a_warning(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = "flow: f\ninitial: a\nstates:\n  a:\n    do: [answer]\n"
        assert lint(text) == ["4:3 warning dead-end"]

    def test_flow_wide_handlers_are_a_way_out(self, lint) -> None:  # type: ignore[no-untyped-def]
        assert lint(_VOICE + "  a:\n    do: [answer]\n") == []

    def test_a_timer_is_a_way_out_but_staying_is_not(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = "flow: f\nkind: messaging\ninitial: a\nstates:\n  a:\n    on: {message: {do: [{reply: x}]}}\n    after: {1m: end}\n  b: {on: {message: b}}\n"
        assert lint(text) == ["8:3 warning unreachable", "8:3 error dead-end"]


class TestTemplates:
    def test_names_set_anywhere_in_the_flow_are_defined(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = (
            _VOICE
            + "  a:\n    do: [{speak: '{{ total }} {{ pin }} {{ reply }}'}, {gather: {into: pin}}, {http: {url: 'https://x', into: reply}}]\n    on: {speak.done: {do: [{set: {total: 1}}], goto: end}}\n"
        )
        assert lint(text) == []

    def test_loop_variables_and_filters_are_not_undefined_names(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = "flow: f\nvars: {items: [1]}\ninitial: a\non: {hangup: end}\nstates:\n  a:\n    do: [{speak: '{% for i in items %}{{ i|string }}{{ loop.index }}{% endfor %}'}]\n"
        assert lint(text) == []

    def test_an_unknown_filter_is_reported(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    do: [{speak: '{{ call.from|shout }}'}]\n"
        assert lint(text) == ["6:18 error template"]

    def test_a_macro_is_refused_by_the_sandbox_rules(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    do: [{speak: '{% macro m() %}x{% endmacro %}'}]\n"
        assert lint(text) == ["6:18 error template"]

    @pytest.mark.parametrize(
        ("source", "names"),
        [
            ("Hi {{ name }}", {"name"}),
            ("{{ a.b.c }} and {{ d[0] }}", {"a", "d"}),
            ("{{ a + b }}", {"a", "b"}),
            ("{{ x if y else z }}", {"x", "y", "z"}),
            ("{{ none }}", set()),
        ],
    )
    def test_template_names_fast_and_slow_paths_agree(self, source: str, names: set[str]) -> None:
        assert analyze_template(source).names == names

    @pytest.mark.parametrize(
        ("source", "names"),
        [
            ("event.digits == '1234'", {"event"}),
            ("attempts < max_tries", {"attempts", "max_tries"}),
            ("not done", {"done"}),
            ("x in ['a', 'b']", {"x"}),
            ("true", set()),
        ],
    )
    def test_expression_names(self, source: str, names: set[str]) -> None:
        assert analyze_expression(source).names == names

    def test_env_keys_are_found_in_attribute_and_item_form(self) -> None:
        assert analyze_template("{{ env.A }}/{{ env['B'] }}").env == {"A", "B"}


class TestMenus:
    def test_a_choice_longer_than_max_digits_is_a_warning(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    menu: {prompt: p, choices: {'1': end, '22': end}, max_digits: 1}\n"
        assert lint(text) == ["6:43 warning choice"]

    def test_a_terminating_digit_choice_works_when_the_terminator_is_changed(self, lint) -> None:  # type: ignore[no-untyped-def]
        text = _VOICE + "  a:\n    menu: {prompt: p, choices: {'#': end}, terminating_digits: '*'}\n"
        assert lint(text) == []


def test_a_file_with_schema_errors_still_reports_its_semantic_problems(lint) -> None:  # type: ignore[no-untyped-def]
    text = (
        _VOICE
        + "  a:\n    do: [{speak: {text: hi, volume: 10}}, {speak: '{{ nope }}'}]\n    on: {speak.done: b}\n"
    )
    assert lint(text) == ["6:37 error schema", "6:51 error undefined", "7:22 error unknown-target"]


def test_a_caller_prefix_is_explained(lint) -> None:  # type: ignore[no-untyped-def]
    text = _VOICE + "  a:\n    do: [answer]\n    on: {caller.hangup: end}\n"
    assert lint(text) == ["7:10 error unknown-event"]
