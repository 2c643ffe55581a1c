"""Tests of the flow compiler: one transitions machine per flow version, choosing transitions in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.errors import FlowCompileError
from flowengine.flow import model as m
from flowengine.flow.compiler import Trial, compile_flow, flow_hash
from flowengine.flow.pipeline import read_flow

HERE = m.Position("f.yaml", 7, 3)


def _flow(**states: m.State) -> m.Flow:
    return m.Flow(name="f", kind="voice", initial=next(iter(states)), states=states)


def _state(name: str, **on: tuple[m.Transition, ...]) -> m.State:
    return m.State(name, on=on)


class TestChoosing:
    def test_guards_are_tried_in_the_order_written(self) -> None:
        flow = _flow(
            a=_state(
                "a",
                **{
                    "gather.done": (
                        m.Transition("b", when="event.digits == '1'"),
                        m.Transition("c", when="true"),
                        m.Transition("b"),
                    )
                },
            ),
            b=m.State("b"),
            c=m.State("c"),
        )
        compiled = compile_flow(flow)
        choice = compiled.select("a", ("gather.done", "gather"), Trial({"event": {"digits": "1"}}))
        assert choice is not None
        assert choice.target == "b"
        choice = compiled.select("a", ("gather.done", "gather"), Trial({"event": {"digits": "2"}}))
        assert choice is not None
        assert choice.target == "c"

    def test_the_most_specific_handler_wins_and_the_state_before_the_flow(self) -> None:
        flow = m.Flow(
            name="f",
            kind="voice",
            initial="a",
            states={"a": _state("a", hangup=(m.Transition("b"),)), "b": m.State("b")},
            on={"hangup.busy": (m.Transition("end"),), "hangup": (m.Transition("end"),)},
        )
        compiled = compile_flow(flow)
        choice = compiled.select("a", ("hangup.busy", "hangup"), Trial({}))
        assert choice is not None
        assert (choice.target, choice.kind) == ("b", "on")
        choice = compiled.select("b", ("hangup.busy", "hangup"), Trial({}))
        assert choice is not None
        assert (choice.target, choice.kind, choice.address) == ("end", "flow", None)

    def test_a_guard_that_fails_to_evaluate_is_false_and_noted(self) -> None:
        flow = _flow(a=_state("a", dtmf=(m.Transition("b", when="vars.missing > 1"),)), b=m.State("b"))
        trial = Trial({"vars": {}})
        assert compile_flow(flow).select("a", ("dtmf",), trial) is None
        assert "guard" in trial.notes[0]

    def test_no_handler_gives_none(self) -> None:
        compiled = compile_flow(_flow(a=m.State("a")))
        assert compiled.select("a", ("dtmf",), Trial({})) is None
        assert not compiled.handles("a", ("dtmf",))

    def test_a_menu_counts_below_its_limit_then_takes_then(self) -> None:
        menu = m.Menu(
            prompt=m.Prompt(text="Press 1"),
            choices={"1": m.Transition("b")},
            nomatch=m.Retry(max=2, then=m.Transition("c")),
        )
        compiled = compile_flow(_flow(a=m.State("a", menu=menu), b=m.State("b"), c=m.State("c")))
        keys = ("gather.done", "gather")
        first = compiled.select("a", keys, Trial({}, digits="9", nomatch=0), menu_event="gather.done")
        assert first is not None
        assert (first.kind, first.target, first.address) == ("nomatch", None, "nomatch:a")
        last = compiled.select("a", keys, Trial({}, digits="9", nomatch=1), menu_event="gather.done")
        assert last is not None
        assert (last.kind, last.target) == ("nomatch-then", "c")
        hit = compiled.select("a", keys, Trial({}, digits="1"), menu_event="gather.done")
        assert hit is not None
        assert (hit.kind, hit.target) == ("choice", "b")

    def test_the_menu_gather_is_the_last_entry_action(self) -> None:
        menu = m.Menu(
            prompt=m.Prompt(text="Press 1"), choices={"1": m.Transition("a"), "42": m.Transition("a")}
        )
        compiled = compile_flow(_flow(a=m.State("a", actions=(m.Answer(),), menu=menu)))
        actions = compiled.actions["do:a"]
        assert isinstance(actions[0], m.Answer)
        assert isinstance(actions[1], m.Gather)
        assert actions[1].max_digits == 2


def _retry_actions(reprompt: m.Prompt, prompt: m.Prompt | None = None) -> tuple[m.ActionType, ...]:
    menu = m.Menu(
        prompt=prompt or m.Prompt(text="Press 1."),
        choices={"1": m.Transition("a")},
        noinput=m.Retry(reprompt=reprompt),
    )
    return compile_flow(_flow(a=m.State("a", menu=menu))).actions["noinput:a"]


class TestReprompts:
    def test_a_spoken_reprompt_starts_the_gather_s_prompt_sentence(self) -> None:
        actions = _retry_actions(m.Prompt(text="Sorry. "))
        assert len(actions) == 1
        gather = actions[0]
        assert isinstance(gather, m.Gather)
        assert gather.prompt == m.Prompt(text="Sorry. Press 1.")

    @pytest.mark.parametrize(
        ("reprompt", "prompt"),
        [
            pytest.param(m.Prompt(url="https://m.test/sorry.mp3"), None, id="reprompt-file"),
            pytest.param(m.Prompt(text="Sorry."), m.Prompt(url="https://m.test/menu.mp3"), id="prompt-file"),
            pytest.param(m.Prompt(text="Sorry.", voice="paul"), None, id="another-voice"),
            pytest.param(m.Prompt(text="Sorry.", locale="fr_FR"), None, id="another-locale"),
            pytest.param(m.Prompt(text="Sorry.", volume=3), None, id="own-volume"),
            pytest.param(m.Prompt(text="Sorry.", loop=True), None, id="loop"),
            pytest.param(m.Prompt(text="x" * 995), None, id="too-long"),
            pytest.param(m.Prompt(text="Sorry {{- '.' }}"), m.Prompt(text="{{- 'Press 1.' }}"), id="trim"),
        ],
    )
    def test_other_reprompts_are_said_before_the_gather(
        self, reprompt: m.Prompt, prompt: m.Prompt | None
    ) -> None:
        actions = _retry_actions(reprompt, prompt)
        assert [type(action) for action in actions] in ([m.Speak, m.Gather], [m.Play, m.Gather])
        assert actions[0].prompt == reprompt  # type: ignore[union-attr]


class TestErrors:
    def test_an_unknown_target_is_reported_at_its_position(self) -> None:
        flow = _flow(a=_state("a", dtmf=(m.Transition("nowhere", pos=HERE),)))
        with pytest.raises(FlowCompileError) as info:
            compile_flow(flow)
        (problem,) = info.value.diagnostics
        assert (problem.path, problem.line, problem.column) == ("f.yaml", 7, 3)
        assert "nowhere" in problem.message

    def test_a_bad_guard_and_a_bad_template_are_reported(self) -> None:
        flow = _flow(
            a=m.State(
                "a",
                actions=(m.Speak(prompt=m.Prompt(text="{{ oops( }}"), pos=HERE),),
                on={"dtmf": (m.Transition("a", when="1 +", pos=m.Position("f.yaml", 9, 5)),)},
            )
        )
        with pytest.raises(FlowCompileError) as info:
            compile_flow(flow)
        assert [(d.line, d.column) for d in info.value.diagnostics] == [(7, 3), (9, 5)]


def test_the_hash_of_a_flow_built_in_code_is_stable_and_follows_content() -> None:
    one = _flow(a=m.State("a"))
    assert flow_hash(one) == flow_hash(_flow(a=m.State("a")))
    assert flow_hash(one) != flow_hash(_flow(a=m.State("a", description="x")))
    assert flow_hash(m.Flow(name="f", kind="voice", initial="a", states={}, source_hash="abc")) == "abc"


FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _trials() -> Iterator[Trial]:
    """Trials that take every guard of the example flows both ways: menu digits and counters, texts, PINs."""
    contexts: list[dict[str, Any]] = [
        {"event": {}, "vars": {}},
        {"event": {"digits": "1"}, "entered": "1234", "pin": "1234", "tries": 0},
        {"event": {"digits": "9"}, "entered": "0000", "pin": "1234", "tries": 2},
        *(
            {"event": {"text": f" {text} "}}
            for text in ("help", "STOP", "hours", "3", "7", "yes", "N", "maybe")
        ),
    ]
    for context in contexts:
        for digits in ("", "1", "2", "3", "9", "0", "*"):
            for count in (0, 1, 2, 3):
                yield Trial(dict(context), digits=digits, noinput=count, nomatch=count)


class TestChoicesFromTheTable:
    """Transitions are chosen from a table built from the machine's own transitions (their conditions in the
    machine's order); it must give the machine's answer."""

    @pytest.mark.parametrize("path", sorted(FLOWS.glob("*.yaml")), ids=lambda p: p.stem)
    def test_the_table_answers_as_the_machine_does_for_every_trigger_of_every_example_flow(
        self, path: Path
    ) -> None:
        compiled = compile_flow(read_flow(path))
        answers: set[str | None] = set()
        for trigger in compiled.machine.events:
            for state in compiled.machine.states:
                for trial in _trials():
                    again = Trial(
                        trial.context, digits=trial.digits, noinput=trial.noinput, nomatch=trial.nomatch
                    )
                    by_table = compiled.fire(state, trigger, trial)
                    by_machine = compiled.fire_machine(state, trigger, again)
                    assert by_table == by_machine, (
                        state,
                        trigger,
                        trial.context,
                        trial.digits,
                        trial.noinput,
                    )
                    assert trial.choice == again.choice
                    assert trial.notes == again.notes
                    answers.add(None if by_table is None else by_table.address)
        # Every choice of the flow was reached by some trial (so the guards were taken both ways).
        every = {
            compiled._choice_of[t].address
            for event in compiled.machine.events.values()
            for transitions_ in event.transitions.values()
            for t in transitions_
        }
        assert every <= answers

    def test_no_choice_asks_the_machine(self, monkeypatch: pytest.MonkeyPatch) -> None:
        compiled = compile_flow(
            _flow(
                a=_state(
                    "a",
                    hangup=(m.Transition("b"), m.Transition("c")),
                    answer=(m.Transition("b", when="false"), m.Transition("c")),
                ),
                b=m.State("b"),
                c=m.State("c"),
            )
        )
        asked: list[str] = []
        for name, event in compiled.machine.events.items():
            monkeypatch.setattr(event, "trigger", lambda *args, name=name: asked.append(name))

        choice = compiled.select("a", ("hangup",), Trial({}))
        assert choice is not None
        assert choice.target == "b"
        choice = compiled.select("a", ("answer",), Trial({}))  # guarded
        assert choice is not None
        assert choice.target == "c"
        assert asked == []
        compiled.fire_machine("a", "s:answer", Trial({}))
        assert asked == ["s:answer"]
        monkeypatch.undo()
        choice = compiled.select("a", ("answer",), Trial({}))
        assert choice is not None
        assert choice.target == "c"
