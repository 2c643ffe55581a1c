"""The state diagram of a flow, as Mermaid and DOT."""

from __future__ import annotations

import pytest

from flowengine.flow.graph import ANY_STATE, Edge, edges_of, render_graph
from flowengine.flow.model import (
    END,
    Flow,
    Hangup,
    Menu,
    Prompt,
    Retry,
    Speak,
    State,
    Timer,
    Transition,
)


def _flow() -> Flow:
    menu = Menu(
        prompt=Prompt(text="Press 1 or #"),
        choices={"1": Transition("sales"), "#": Transition("goodbye")},
        noinput=Retry(max=2, then=Transition("goodbye")),
        nomatch=Retry(max=3, then=Transition(END)),
    )
    return Flow(
        name="ivr-line",
        kind="voice",
        initial="greet",
        states={
            "greet": State(
                "greet", actions=(Speak(prompt=Prompt(text="Hi")),), on={"speak.done": (Transition("menu"),)}
            ),
            "menu": State("menu", menu=menu),
            "sales": State(
                "sales",
                on={
                    "gather.done": (
                        Transition("goodbye", when="event.digits == '1'"),
                        Transition(None, actions=(Speak(prompt=Prompt(text="again")),)),
                        Transition(None),
                    )
                },
                after=(Timer(90.0, (Transition("goodbye"),)),),
            ),
            "goodbye": State("goodbye", actions=(Hangup(),), final=True),
        },
        on={"hangup": (Transition(END),)},
    )


def test_edges_cover_events_choices_retries_timers_and_global_handlers() -> None:
    edges = edges_of(_flow())
    assert Edge("greet", "menu", "speak.done", "event") in edges
    assert Edge("menu", "sales", "press 1", "choice") in edges
    assert Edge("menu", "goodbye", "press #", "choice") in edges
    assert Edge("menu", "goodbye", "noinput x2", "retry") in edges
    assert Edge("menu", END, "nomatch x3", "retry") in edges
    assert Edge("sales", "goodbye", "gather.done [event.digits == '1']", "event") in edges
    assert Edge("sales", "sales", "gather.done", "event") in edges
    assert Edge("sales", "goodbye", "after 90s", "timer") in edges
    assert Edge(ANY_STATE, END, "hangup", "global") in edges


def test_a_stay_transition_without_actions_is_not_drawn() -> None:
    sales_loops = [e for e in edges_of(_flow()) if e.source == "sales" and e.target == "sales"]
    assert len(sales_loops) == 1


def test_mermaid_escapes_hash_and_marks_start_and_final_states() -> None:
    text = render_graph(_flow(), "mermaid")
    assert text.startswith("stateDiagram-v2\n")
    assert "    [*] --> greet\n" in text
    assert "    menu --> goodbye: press #35;\n" in text
    assert "    goodbye --> [*]\n" in text
    assert "    any_state --> [*]: hangup\n" in text
    assert "event.digits == '1'" in text


def test_dot_quotes_names_and_styles_final_states() -> None:
    text = render_graph(_flow(), "dot")
    assert text.startswith('digraph "ivr-line" {\n')
    assert '    "goodbye" [peripheries=2];\n' in text
    assert '"sales" -> "goodbye" [label="gather.done [event.digits == \'1\']"];' in text
    assert '"menu" -> "end" [label="nomatch x3" style=dashed color="#9a6700"];' in text
    assert text.rstrip().endswith("}")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        render_graph(_flow(), "svg")  # type: ignore[arg-type]
