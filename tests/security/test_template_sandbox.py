"""Templates and ``when`` expressions: sandbox escapes are refused, evaluation is bounded, caller data is data.

The attacks are the classic Jinja server-side template injections (attribute walks to ``__globals__`` and
``__subclasses__``, format-string field access, helper globals), then resource attacks (huge ranges, nested
loops, repetition, doubling by concatenation, shared nested lists that print exponentially), then values
from callers carrying template syntax.
"""

from __future__ import annotations

import time

import pytest

from flowengine.errors import TemplateError
from flowengine.flow.templates import (
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT,
    evaluate,
    render,
    render_url,
    render_value,
)

CONTEXT = {
    "vars": {"name": "Ada"},
    "event": {"digits": "1", "text": "hi"},
    "call": {"from": "+19195551212", "to": "+19195550000", "id": "c-1"},
    "legs": {"caller": "c-1"},
    "env": {"CRM_URL": "https://crm.example/api"},
    "error": None,
    "session": {"id": "s-1", "flow": "f", "state": "a"},
}

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ vars.__class__.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ dict.mro() }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ vars|attr('__init__') }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ '{0.__class__.__base__}'.format(vars) }}",
    "{{ '{0:{1}}'.format('x', 99999999) }}",
    "{{ '{0:>{w}}'.format_map({'0': 1, 'w': 99999999}) }}",
    "{{ '%(a)99999999s' % {'a': 1} }}",
    "{{ ''.format_map.__self__ }}",
    "{{ vars.update({'name': 'x'}) }}",
    "{{ legs.pop('caller') }}",
    "{{ event.setdefault('x', 1) }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ url_for.__globals__ }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{% import 'os' as os %}",
    "{% from 'x' import y %}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{% macro m() %}{% endmacro %}",
    "{% set ns = namespace(a=1) %}{{ ns.a }}",
]


@pytest.mark.parametrize("src", ESCAPES)
def test_sandbox_escapes_are_refused_with_a_template_error(src: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(src, CONTEXT)
    assert "line" in str(info.value)


@pytest.mark.parametrize(
    "src",
    [
        "''.__class__",
        "vars.__class__.__mro__",
        "event|attr('__class__')",
        "'{0.__globals__}'.format(range)",
        "vars.clear()",
        "lipsum()",
    ],
)
def test_escapes_in_when_expressions_are_refused(src: str) -> None:
    with pytest.raises(TemplateError):
        evaluate(src, CONTEXT)


RESOURCE_ATTACKS = [
    pytest.param("{{ range(10 ** 9) | list }}", id="huge range"),
    pytest.param(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", id="10^8 loops"
    ),
    pytest.param("{{ 'x' * 10 ** 9 }}", id="string repetition"),
    pytest.param("{{ [0] * 10 ** 9 }}", id="list repetition"),
    pytest.param("{{ (0,) * 10 ** 9 }}", id="tuple repetition"),
    pytest.param("{{ (2 ** 4000) ** 2 }}", id="power of a power"),
    pytest.param("{% set x = 2 ** 4000 %}{{ x * x * x }}", id="big products"),
    pytest.param("{% set s = 'a' * 60000 %}{% set s = s + s %}{{ s | length }}", id="doubling with +"),
    pytest.param("{% set s = 'a' * 60000 %}{% set s = s ~ s %}{{ s | length }}", id="doubling with ~"),
    pytest.param("{% set s = 'a' * 60000 %}{{ [s, s] | join | length }}", id="doubling with join"),
    pytest.param("{{ range(10000) | join('x' * 60000) }}", id="join separator"),
    pytest.param(
        "{% set a = ['a' * 60000] %}{% set a = [a, a] %}{% set a = [a, a] %}{{ a }}", id="shared nested lists"
    ),
    pytest.param("{% set a = ['a' * 60000, 'b' * 9000] %}{{ a | tojson }}", id="tojson of a big list"),
    pytest.param("{% set a = ['a' * 40000] %}{{ [a, a] | sum(start=[]) | string }}", id="sum and string"),
    pytest.param("{{ '%.99999999f' % 1 }}", id="printf precision"),
    pytest.param("{{ '{:099999999}'.format(1) }}", id="format width"),
    pytest.param("{{ 'x'.center(10 ** 9) }}", id="center"),
    pytest.param("{{ 'x'.zfill(10 ** 9) }}", id="zfill"),
    pytest.param("{{ 'x\\t'.expandtabs(10 ** 9) }}", id="expandtabs"),
    pytest.param("{{ ('a' * 60000).replace('a', 'aa') }}", id="replace"),
    pytest.param("{{ 'x' | indent(10 ** 9) }}", id="indent"),
]


@pytest.mark.parametrize("src", RESOURCE_ATTACKS)
def test_resource_attacks_are_refused_quickly(src: str) -> None:
    started = time.process_time()
    with pytest.raises(TemplateError, match=r"refused by the sandbox|too deeply nested"):
        render(src, CONTEXT)
    # A refusal, not a slow success: generous for slow machines, far below what the attack would cost.
    assert time.process_time() - started < 5


def test_the_loop_budget_counts_every_loop_of_a_rendering() -> None:
    per_loop = MAX_LOOP_ITERATIONS // 2
    ok = f"{{% for i in range({per_loop // 10}) %}}{{% endfor %}}" * 2
    render(ok, CONTEXT)
    nested = "{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match=f"loops ran more than {MAX_LOOP_ITERATIONS}"):
        render(nested, CONTEXT)
    # the budget is per rendering: the same template renders again
    render(ok, CONTEXT)


def test_loops_still_work_with_their_loop_variable() -> None:
    src = "{% for x in vars.xs %}{{ loop.index }}/{{ loop.length }}{% endfor %}"
    assert render(src, {"vars": {"xs": ["a", "b"]}}) == "1/22/2"
    assert render("{% for x in [] %}a{% else %}none{% endfor %}", {}) == "none"


def test_concatenation_and_join_below_the_limits_still_work() -> None:
    assert render("{{ 'a' ~ 1 ~ none }}", {}) == "a1None"
    assert render("{{ ['a', 'b'] | join(', ') }}", {}) == "a, b"
    assert render("{{ [[1], [2]] | sum(start=[]) }}", {}) == "[1, 2]"
    assert evaluate("'+1' ~ event.digits", CONTEXT) == "+11"
    assert len(render("{{ 'a' * (n - 1) ~ 'b' }}", {"n": MAX_OUTPUT})) == MAX_OUTPUT


class TestCallerValuesAreData:
    @pytest.mark.parametrize(
        "text",
        [
            "{{ ''.__class__ }}",
            "{% for i in range(10000) %}x{% endfor %}",
            "{{ env.CRM_URL }}",
            "{{ 7 * 7 }}",
            "%s%s%s %(x)s {0} {0.__class__}",
        ],
    )
    def test_template_syntax_in_a_caller_value_is_printed_as_is(self, text: str) -> None:
        context = {**CONTEXT, "event": {"text": text}}
        assert render("You said: {{ event.text }}", context) == f"You said: {text}"
        assert evaluate("event.text", context) == text
        assert render_value({"said": "{{ event.text }}"}, context) == {"said": text}

    def test_a_caller_value_is_never_formatted(self) -> None:
        context = {**CONTEXT, "event": {"text": "%(secret)s {0.__class__}"}}
        assert render("{{ 'got: %s' % event.text }}", context) == "got: %(secret)s {0.__class__}"


class TestUrls:
    def test_caller_values_in_the_path_and_query_are_percent_encoded(self) -> None:
        context = {**CONTEXT, "event": {"digits": "1&admin=1#x", "text": "../../admin?x=1"}}
        url = render_url(
            "{{ env.CRM_URL }}/callers/{{ event.text }}?from={{ call.from }}&d={{ event.digits }}", context
        )
        assert url == (
            "https://crm.example/api/callers/..%2F..%2Fadmin%3Fx%3D1?from=%2B19195551212&d=1%26admin%3D1%23x"
        )

    def test_a_base_url_from_env_is_used_as_written(self) -> None:
        assert render_url("{{ env.CRM_URL }}", CONTEXT) == "https://crm.example/api"

    def test_a_value_the_author_urlencoded_is_not_encoded_twice(self) -> None:
        url = render_url("https://h.example/?q={{ call.from | urlencode }}", CONTEXT)
        assert url == "https://h.example/?q=%2B19195551212"

    def test_plain_urls_and_constant_text_are_unchanged(self) -> None:
        assert render_url("https://h.example/a?b=c", CONTEXT) == "https://h.example/a?b=c"

    def test_marker_characters_in_caller_values_cannot_forge_structure(self) -> None:
        context = {**CONTEXT, "event": {"text": "\ue001/evil\ue000x"}}
        assert render_url("https://h.example/{{ event.text }}", context) == "https://h.example/%2Fevilx"

    def test_url_templates_get_the_same_sandbox(self) -> None:
        with pytest.raises(TemplateError):
            render_url("https://h.example/{{ ''.__class__ }}", CONTEXT)
        with pytest.raises(TemplateError):
            render_url("https://h.example/{{ undefined_name }}", CONTEXT)
