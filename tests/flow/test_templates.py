"""Tests of the sandboxed templates and ``when`` expressions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.errors import TemplateError, TemplateSyntaxError
from flowengine.flow import templates
from flowengine.flow.templates import (
    MAX_OUTPUT,
    check_expression,
    check_template,
    compile_expression,
    compile_template,
    evaluate,
    expression_names,
    render,
    render_value,
    template_names,
)


class TestRender:
    def test_plain_text_skips_jinja_entirely(self) -> None:
        compiled = compile_template("Hello {there} 100%")
        assert compiled.is_constant
        assert render(compiled, {}) == "Hello {there} 100%"

    def test_variables_and_attributes_render(self) -> None:
        context = {"vars": {"company": "Acme"}, "event": {"digits": "42"}}
        assert render("{{ vars.company }} got {{ event.digits }}", context) == "Acme got 42"

    def test_none_renders_as_nothing(self) -> None:
        assert render("[{{ event.tag }}]", {"event": {"tag": None}}) == "[]"

    def test_compiled_templates_are_cached_by_source(self) -> None:
        assert compile_template("{{ a }}") is compile_template("{{ a }}")
        assert compile_expression("a == 1") is compile_expression("a == 1")

    def test_an_undefined_name_is_an_error(self) -> None:
        with pytest.raises(TemplateError, match="'missing' is undefined"):
            render("Hi {{ missing }}", {})

    def test_an_undefined_attribute_is_an_error(self) -> None:
        with pytest.raises(TemplateError, match="line 2"):
            render("first line\n{{ vars.nothing }}", {"vars": {}})

    def test_caller_data_is_never_rendered_as_a_template(self) -> None:
        text = "{{ 7 * 7 }}"
        assert render("You said: {{ event.text }}", {"event": {"text": text}}) == f"You said: {text}"

    def test_urlencode_escapes_values_for_urls(self) -> None:
        out = render("https://x.test/?q={{ q | urlencode }}", {"q": "a b&c=d"})
        assert out == "https://x.test/?q=a%20b%26c%3Dd"

    def test_render_value_keeps_the_shape_of_json(self) -> None:
        value = {"from": "{{ n }}", "count": 3, "ok": True, "list": ["{{ n }}", None]}
        assert render_value(value, {"n": "+1"}) == {
            "from": "+1",
            "count": 3,
            "ok": True,
            "list": ["+1", None],
        }


class TestSandbox:
    @pytest.mark.parametrize(
        "src",
        [
            pytest.param("{{ ''.__class__ }}", id="dunder attribute"),
            pytest.param("{{ x.keys.__self__ }}", id="underscore attribute"),
            pytest.param("{{ 'x' * 100000 }}", id="string repetition"),
            pytest.param("{{ [1] * 100000 }}", id="list repetition"),
            pytest.param("{{ 2 ** 100000 }}", id="huge power"),
            pytest.param("{{ range(1000000) | list }}", id="huge range"),
            pytest.param("{{ 'x' | center(10000000) }}", id="center width"),
            pytest.param("{{ '%99999999s' | format('x') }}", id="format filter width"),
            pytest.param("{{ '%99999999s' % 'x' }}", id="percent width"),
            pytest.param("{{ '{:>99999999}'.format('x') }}", id="str.format width"),
            pytest.param("{{ 'x'.ljust(99999999) }}", id="ljust"),
            pytest.param("{{ ('a' * 60000) | replace('a', 'aaaa') }}", id="replace amplification"),
            pytest.param("{{ ('a' * 60000).replace('a', 'aaaa') }}", id="replace method amplification"),
            pytest.param("{% for i in range(9000) %}{{ 'abcdefghij' }}{% endfor %}", id="output size"),
        ],
    )
    def test_dangerous_templates_are_refused(self, src: str) -> None:
        with pytest.raises(TemplateError):
            render(src, {"x": {"_private": 1}})

    def test_lists_cannot_be_mutated(self) -> None:
        with pytest.raises(TemplateError):
            render("{{ xs.append(1) }}", {"xs": [1]})

    def test_output_just_under_the_cap_renders(self) -> None:
        out = render("{{ 'a' * n }}", {"n": MAX_OUTPUT})
        assert len(out) == MAX_OUTPUT

    def test_nondeterministic_helpers_are_not_available(self) -> None:
        with pytest.raises(TemplateError):
            render("{{ [1, 2] | random }}", {})
        with pytest.raises(TemplateError):
            render("{{ lipsum() }}", {})

    def test_an_unknown_filter_is_a_syntax_error(self) -> None:
        with pytest.raises(TemplateSyntaxError, match="nosuch"):
            check_template("{{ 1 | nosuch }}")
        with pytest.raises(TemplateSyntaxError, match="nosuch"):
            check_expression("1 | nosuch")


class TestChecks:
    def test_a_syntax_error_reports_its_line_within_the_template(self) -> None:
        with pytest.raises(TemplateSyntaxError) as info:
            check_template("one\ntwo\n{{ oops( }}")
        assert info.value.line == 3

    @pytest.mark.parametrize(
        ("src", "line", "message"),
        [
            pytest.param("a\n{% macro m() %}{% endmacro %}", 2, "macro", id="macro"),
            pytest.param("{% include 'x' %}", 1, "include", id="include"),
            pytest.param(
                "{% for a in x %}\n{% for b in x %}\n{% for c in x %}{% endfor %}{% endfor %}{% endfor %}",
                3,
                "nested",
                id="three nested loops",
            ),
            pytest.param("{% for a in x recursive %}{% endfor %}", 1, "recursive", id="recursive loop"),
        ],
    )
    def test_refused_constructs_report_their_line(self, src: str, line: int, message: str) -> None:
        with pytest.raises(TemplateSyntaxError, match=message) as info:
            check_template(src)
        assert info.value.line == line

    def test_plain_text_has_no_names_and_always_checks(self) -> None:
        check_template("{ not jinja }")
        assert template_names("no markup {x}") == frozenset()

    def test_template_names_lists_what_the_template_reads(self) -> None:
        src = "{{ vars.a }} {% for x in event.items %}{{ x }}{% endfor %}{% set y = 1 %}{{ y }}"
        assert template_names(src) == {"vars", "event"}

    def test_expression_names_and_check(self) -> None:
        assert expression_names("event.digits == vars.pin and tries < 3") == {"event", "vars", "tries"}
        with pytest.raises(TemplateSyntaxError):
            check_expression("event.digits ==")
        with pytest.raises(TemplateSyntaxError):
            check_expression("   ")
        with pytest.raises(TemplateSyntaxError):
            check_expression("1 }} {{ 2")


class TestEvaluate:
    def test_expressions_return_python_values(self) -> None:
        assert evaluate("event.digits == '1'", {"event": {"digits": "1"}}) is True
        assert evaluate("n + 1", {"n": 2}) == 3
        assert evaluate("event.text | upper", {"event": {"text": "stop"}}) == "STOP"

    def test_an_undefined_result_is_an_error(self) -> None:
        with pytest.raises(TemplateError, match="no attribute"):
            evaluate("event.nothing", {"event": {}})

    def test_comparing_an_undefined_value_is_an_error(self) -> None:
        with pytest.raises(TemplateError):
            evaluate("vars.missing == 1", {"vars": {}})

    def test_runtime_errors_become_template_errors(self) -> None:
        with pytest.raises(TemplateError, match="ZeroDivisionError"):
            evaluate("1 / 0", {})
        with pytest.raises(TemplateError):
            evaluate("2 ** 100000", {})

    def test_truthy_gives_a_bool(self) -> None:
        assert templates.truthy("xs", {"xs": [1]}) is True
        assert templates.truthy("xs", {"xs": []}) is False


class TestSimpleTemplates:
    """Text-and-lookup templates render by direct lookups; the result is always Jinja's own."""

    def test_simple_templates_skip_jinjas_context(self, monkeypatch: pytest.MonkeyPatch) -> None:
        compiled = compile_template("Thanks for calling {{ company }}, {{ call.to }}!")
        assert compiled._template is not None

        def no_context(*args: object, **kwargs: object) -> None:
            raise AssertionError("Jinja's context was built for a simple template")

        monkeypatch.setattr(compiled._template, "new_context", no_context)
        context = {"company": "Acme", "call": {"to": "+19195551000"}}
        assert compiled.render(context) == "Thanks for calling Acme, +19195551000!"

    @pytest.mark.parametrize(
        "source",
        ["{{ a|upper }}", "{% if a %}b{% endif %}", "{{ a._b }}", "{{ a['b'] }}", "{{ 'x' }}", "{{ a() }}"],
    )
    def test_anything_else_is_left_to_jinja(self, source: str) -> None:
        assert compile_template(source)._parts is None

    def test_url_templates_always_mark_their_values(self) -> None:
        assert templates.compile_url_template("https://x.test/{{ a }}")._parts is None
        assert templates.render_url("https://x.test/calls?from={{ a }}", {"a": "+1 &b"}) == (
            "https://x.test/calls?from=%2B1%20%26b"
        )

    @pytest.mark.parametrize(
        ("source", "context"),
        [
            ("{{ a.items }}", {"a": {"items": "x"}}),  # a dict attribute: Jinja gives the method
            ("{{ a.b }}", {"a": {"c": 1}}),  # a missing key
            ("{{ a }}", {"a": [1, 2]}),  # not a scalar
            ("{{ range }}", {}),  # a global, not a context value
            ("{{ a }}", {"a": "x" * (MAX_OUTPUT + 1)}),  # too long
            ("{{ self }}", {"self": "x"}),  # Jinja's template reference, not the context value
        ],
    )
    def test_unusual_lookups_fall_back_to_jinja(self, source: str, context: dict[str, object]) -> None:
        fast = compile_template(source)
        slow = templates.CompiledTemplate(source, fast._template)
        assert _outcome(fast, context) == _outcome(slow, context)

    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def test_direct_lookups_agree_with_jinja(self, data: st.DataObject) -> None:
        names = st.sampled_from(["a", "b", "call", "items", "keys", "to", "x1", "self", "loop"])
        path = st.lists(names, min_size=1, max_size=3).map(lambda keys: "{{ " + ".".join(keys) + " }}")
        text = st.text(alphabet="ab .,!{}%#\n-", max_size=8).filter(
            lambda t: "{{" not in t and "{%" not in t and "{#" not in t and not t.endswith("{")
        )
        source = "".join(data.draw(st.lists(st.one_of(path, text), min_size=1, max_size=4)))
        scalars = st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
        )
        values = st.recursive(
            scalars,
            lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(names, inner, max_size=3)),
            max_leaves=6,
        )
        context = data.draw(st.dictionaries(names, values, max_size=5))
        try:
            fast = compile_template(source)
        except TemplateSyntaxError:
            return
        slow = templates.CompiledTemplate(source, fast._template)
        assert _outcome(fast, context) == _outcome(slow, context)


def _outcome(compiled: templates.CompiledTemplate, context: dict[str, object]) -> tuple[str, str]:
    try:
        return ("ok", compiled.render(context))
    except TemplateError as exc:
        return ("error", str(exc))
