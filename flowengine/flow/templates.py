"""Sandboxed Jinja2 templates and ``when`` expressions: the only way flow text is ever evaluated.

Every template runs in an :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with ``StrictUndefined``
(a name that is not in the context is an error, never an empty string), autoescape off, no underscore
attributes, no macros or call blocks, at most two nested ``for`` loops and ``MAX_LOOP_ITERATIONS`` loop
rounds per rendering, a small ``range``, capped string repetition, concatenation (``+``, ``~``, ``join``,
``sum``), products, padding and formatting widths (nested ``str.format`` fields included), and a cap on the
rendered size that is checked before a container is printed. Values that come from callers (digits, SMS text,
HTTP answers) are put into the context as data; they are never compiled as templates. ``render_url``
percent-encodes the values that land in a URL's path, query or fragment.

A string without ``{{``, ``{%`` or ``{#`` never reaches Jinja (the fast path), and compiled templates are
cached by their source text, so the runtime can call :func:`render` on every event.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer

from flowengine.errors import TemplateError, TemplateSyntaxError

MAX_OUTPUT: Final = 65_536
"""The most characters a template may render, and the largest string or list an operator may build."""

MAX_RANGE: Final = 10_000
"""The most items one ``range(...)`` may produce."""

MAX_LOOP_DEPTH: Final = 2
"""The most ``for`` loops that may be nested in one template."""

MAX_POWER_BITS: Final = 4_096
"""The largest integer (in bits) that ``**`` or ``*`` may produce."""

MAX_LOOP_ITERATIONS: Final = 100_000
"""The most ``for`` loop iterations one rendering may run, all loops together (nested ones multiply)."""

CONTEXT_NAMES: Final = frozenset({"vars", "call", "event", "legs", "env", "error", "session"})
"""Names the runtime always puts in a template's context; the flow's variables are also top-level names
(``{{ company }}`` is ``{{ vars.company }}``), and these names win over a variable of the same name."""

_TEMPLATE_NAME: Final = "<template>"
_MARKERS: Final = ("{{", "{%", "{#")

# printf-style directive: %(name)flags width .precision length conversion
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _too_wide(number: str | None) -> bool:
    return number is not None and (number == "*" or int(number) > MAX_OUTPUT)


def _check_printf(fmt: str) -> None:
    for match in _PRINTF.finditer(fmt):
        if _too_wide(match.group(1)) or _too_wide(match.group(2)):
            raise SecurityError(f"format width or precision in {match.group(0)!r} is over {MAX_OUTPUT}")


def _check_format_spec(fmt: str) -> None:
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise SecurityError(f"bad format string: {exc}") from None
    for _literal, _field, spec, _conversion in parts:
        if not spec:
            continue
        for number in _DIGITS.findall(spec):
            if int(number) > MAX_OUTPUT:
                raise SecurityError(f"format width {number} is over {MAX_OUTPUT}")


def _check_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT:
        raise SecurityError(f"{what} would build {size} items, over the limit of {MAX_OUTPUT}")


def _too_big(value: Any, limit: int = MAX_OUTPUT) -> bool:
    """Whether ``value`` would print as more than about ``limit`` characters, found without printing it.

    Containers may share items (``[s, s]`` nested twenty times), so printing first could take gigabytes; the
    walk stops as soon as the count passes the limit, so it costs at most ``limit`` steps.
    """
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += 1
        if total > limit:
            return True
    return False


def _check_value(value: Any, what: str) -> None:
    if isinstance(value, list | tuple | set | frozenset | Mapping) and _too_big(value):
        raise SecurityError(f"{what} would be longer than {MAX_OUTPUT} characters")


_LOOP_BUDGET: ContextVar[list[int]] = ContextVar("flowengine_loop_budget")


def _loop_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    # Every `for` loop of a template iterates through this (see _harden): one budget per rendering, so
    # `range(10000)` inside `range(10000)` stops after MAX_LOOP_ITERATIONS rounds instead of 10^8.
    budget = _LOOP_BUDGET.get(None)
    if budget is None:
        budget = [MAX_LOOP_ITERATIONS]
    for item in iterable:
        budget[0] -= 1
        if budget[0] < 0:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS} times in one template")
        yield item


def _concat(*values: Any) -> str:
    # The `~` operator, with the size checked before any string is built.
    total = 0
    parts = []
    for value in values:
        _check_value(value, "concatenation")
        text = str(value)
        total += len(text)
        _check_size(total, "concatenation")
        parts.append(text)
    return "".join(parts)


@jinja2.pass_eval_context
def _safe_join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    _check_value(items, "join")
    _check_size(len(str(d)) * max(len(items) - 1, 0), "join")
    return str(_JOIN(eval_ctx, items, d, attribute))


def _checked_filter(name: str) -> Callable[..., Any]:
    """Jinja's filter ``name`` with its input's printed size checked first (keeps what it is passed)."""
    original = jinja2.filters.FILTERS[name]
    passed = getattr(original, "jinja_pass_arg", None)
    checked: Callable[..., Any]
    if passed is None:

        def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_value(value, name)
            return original(value, *args, **kwargs)

    else:

        def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_value(value, name)
            return original(context, value, *args, **kwargs)

        checked.jinja_pass_arg = passed  # type: ignore[attr-defined]
    return checked


@jinja2.pass_environment
def _safe_sum(
    environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0
) -> Any:
    items = list(iterable)
    if isinstance(start, str | list | tuple):
        size = len(start) + sum(len(x) for x in items if isinstance(x, str | list | tuple))
        _check_size(size, "sum")
    return _SUM(environment, items, attribute, start)


def _safe_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range of {len(result)} items is over the limit of {MAX_RANGE}")
    return result


def _safe_replace(value: str, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _check_size(len(text) + hits * max(len(new) - len(old), 0), "replace")
    return text.replace(old, new) if count is None else text.replace(old, new, count)


def _safe_center(value: str, width: int = 80) -> str:
    _check_size(int(width), "center")
    return str(value).center(int(width))


def _safe_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = " " * int(width) if isinstance(width, int) else str(width)
    lines = str(value).count("\n") + 1
    _check_size(len(str(value)) + lines * len(pad), "indent")
    text = str(value)
    out = []
    for index, line in enumerate(text.split("\n")):
        if (index == 0 and not first) or (not line and not blank):
            out.append(line)
        else:
            out.append(pad + line)
    return "\n".join(out)


def _safe_format(value: str, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise SecurityError("format takes positional or keyword arguments, not both")
    fmt = str(value)
    _check_printf(fmt)
    result = fmt % (kwargs or args)
    _check_size(len(result), "format")
    return result


_PADDING_METHODS: Final = frozenset({"center", "ljust", "rjust", "zfill"})


class _CheckedFormatter(SandboxedFormatter):
    """``str.format`` in templates: the sandbox's attribute rules plus a cap on every field's width.

    The width is checked once nested fields are filled in, so ``'{0:{1}}'.format(x, 10 ** 9)`` is refused.
    """

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in _DIGITS.findall(format_spec):
            if int(number) > MAX_OUTPUT:
                raise SecurityError(f"format width {number} is over {MAX_OUTPUT}")
        return super().format_field(value, format_spec)


class _FlowSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with flowengine's limits on operators, calls and string building."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _check_size(len(seq) * times, "repetition")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left).bit_length() + abs(right).bit_length() > MAX_POWER_BITS
            ):
                raise SecurityError(f"the product of {left.bit_length()}-bit numbers is too large")
            return left * right
        if operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                _check_size(len(left) + len(right), "concatenation")
            return left + right
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                bits = max(abs(left), 1).bit_length() * right
                if bits > MAX_POWER_BITS:
                    raise SecurityError(f"{left} ** {right} is too large")
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_printf(left)
                result = left % right
                _check_size(len(result), "format")
                return result
            return left % right
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None
        text: str = value.__self__
        is_map = value.__name__ == "format_map"
        formatter = _CheckedFormatter(self)

        def checked_format(*args: Any, **kwargs: Any) -> str:
            _check_format_spec(text)
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                result = str(formatter.vformat(text, (), args[0]))
            else:
                result = str(formatter.vformat(text, args, kwargs))
            _check_size(len(result), "format")
            return result

        return checked_format

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _PADDING_METHODS and args:
                _check_size(int(args[0]), name)
            elif name == "expandtabs":
                raise SecurityError("str.expandtabs is not allowed in templates")
            elif name == "replace" and len(args) >= 2:
                return _safe_replace(owner, args[0], args[1], *args[2:3])
        return super().call(__context, __obj, *args, **kwargs)


def _finalize(value: Any) -> Any:
    # A missing optional value (an API field that was absent) renders as nothing, not as "None".
    if value is None:
        return ""
    _check_value(value, "the value")
    return value


def _make_environment() -> _FlowSandbox:
    env = _FlowSandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.clear()
    env.globals.update({"range": _safe_range, "dict": dict})
    # Nondeterministic or amplifying filters are replaced or removed: the core must be repeatable.
    env.filters.pop("random", None)
    env.filters.update(
        {
            "replace": _safe_replace,
            "center": _safe_center,
            "indent": _safe_indent,
            "format": _safe_format,
            "join": _safe_join,
            "sum": _safe_sum,
            **{name: _checked_filter(name) for name in ("tojson", "string", "pprint", "list")},
        }
    )
    return env


_JOIN: Final = jinja2.filters.FILTERS["join"]
_SUM: Final = jinja2.filters.FILTERS["sum"]
_ENV: Final = _make_environment()


# ------------------------------------------------------------------------------------ errors and checks


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _syntax_error(src: str, exc: jinja2.TemplateSyntaxError, offset: int = 0) -> TemplateSyntaxError:
    line = max((exc.lineno or 1) - offset, 1)
    return TemplateSyntaxError(exc.message or "invalid template", line=line, source=src)


def _refuse(src: str, node: jinja2.nodes.Node, message: str) -> TemplateSyntaxError:
    return TemplateSyntaxError(message, line=node.lineno or 1, source=src)


def _check_tree(src: str, tree: jinja2.nodes.Template) -> None:
    for node in tree.find_all((jinja2.nodes.Macro, jinja2.nodes.CallBlock)):
        kind = "macro" if isinstance(node, jinja2.nodes.Macro) else "call block"
        raise _refuse(src, node, f"a {kind} is not allowed in flow templates")
    for node in tree.find_all((jinja2.nodes.Extends, jinja2.nodes.Include, jinja2.nodes.Import)):
        raise _refuse(src, node, "templates cannot extend, include or import other templates")
    for node in tree.find_all(jinja2.nodes.FromImport):
        raise _refuse(src, node, "templates cannot import other templates")
    for node in tree.find_all(jinja2.nodes.For):
        if node.recursive:
            raise _refuse(src, node, "recursive loops are not allowed in flow templates")
    _check_depth(src, tree, 0)


def _check_depth(src: str, node: jinja2.nodes.Node, depth: int) -> None:
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, jinja2.nodes.For) else depth
        if inner > MAX_LOOP_DEPTH:
            raise _refuse(src, child, f"at most {MAX_LOOP_DEPTH} nested for loops are allowed")
        _check_depth(src, child, inner)


_HERE: Final = __name__


def _imported(name: str, *args: jinja2.nodes.Node, lineno: int) -> jinja2.nodes.Call:
    function = jinja2.nodes.ImportedName(f"{_HERE}.{name}", lineno=lineno)
    return jinja2.nodes.Call(function, list(args), [], None, None, lineno=lineno)


class _Harden(NodeTransformer):
    """Routes every loop through the loop budget and every ``~`` through the size-checked concatenation."""

    def visit_For(self, node: jinja2.nodes.For) -> jinja2.nodes.Node:
        self.generic_visit(node)
        node.iter = _imported("_loop_iter", node.iter, lineno=node.lineno)
        return node

    def visit_Concat(self, node: jinja2.nodes.Concat) -> jinja2.nodes.Node:
        self.generic_visit(node)
        return _imported("_concat", *node.nodes, lineno=node.lineno)


def _parse(src: str) -> jinja2.nodes.Template:
    try:
        tree = _ENV.parse(src, name=_TEMPLATE_NAME)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(src, exc) from None
    _check_tree(src, tree)
    _Harden().visit(tree)
    return tree


def _expression_source(src: str) -> str:
    # Parenthesised so that `a if b` or a trailing filter parse as one expression; the newline keeps a
    # trailing comment-like fragment from swallowing the closing braces.
    return "{{ (" + src + "\n) }}"


def _parse_expression(src: str) -> jinja2.nodes.Template:
    if not src.strip():
        raise TemplateSyntaxError("empty expression", line=1, source=src)
    if any(marker in src for marker in ("}}", "{%", "%}")):
        raise TemplateSyntaxError("an expression cannot contain template delimiters", line=1, source=src)
    try:
        tree = _ENV.parse(_expression_source(src), name=_TEMPLATE_NAME)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(src, exc) from None
    _check_tree(src, tree)
    return tree


def is_template(src: str) -> bool:
    """Whether ``src`` contains Jinja markup; a plain string is used as is."""
    return any(marker in src for marker in _MARKERS)


def check_template(src: str) -> None:
    """Parse ``src`` as a template and apply the sandbox's static rules.

    Raises:
        TemplateSyntaxError: (a TemplateError) with ``line``, 1-based within the template.
    """
    if is_template(src):
        compile_template(src)


def check_expression(src: str) -> None:
    """Parse ``src`` as a ``when`` expression.

    Raises:
        TemplateSyntaxError: (a TemplateError) with ``line``, 1-based within the expression.
    """
    compile_expression(src)


def template_names(src: str) -> frozenset[str]:
    """The top-level names ``src`` reads from its context (``vars``, ``event``, ...); empty for plain text.

    Raises:
        TemplateSyntaxError: when ``src`` does not parse.
    """
    if not is_template(src):
        return frozenset()
    return frozenset(jinja2.meta.find_undeclared_variables(_parse(src)))


def expression_names(src: str) -> frozenset[str]:
    """The top-level names the expression ``src`` reads from its context.

    Raises:
        TemplateSyntaxError: when ``src`` does not parse.
    """
    return frozenset(jinja2.meta.find_undeclared_variables(_parse_expression(src)))


# ------------------------------------------------------------------------------------------- compiled


def _wrap_render_error(src: str, exc: Exception, template: jinja2.Template | None = None) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    code_line = _template_line(exc.__traceback__)
    if code_line is None:
        line = 1
    elif template is None:
        line = 1  # an expression is one line as far as its author is concerned
    else:
        line = template.get_corresponding_lineno(code_line)
    if isinstance(exc, jinja2.UndefinedError):
        reason = exc.message or "undefined name"
    elif isinstance(exc, SecurityError):
        reason = f"refused by the sandbox: {exc}"
    elif isinstance(exc, RecursionError):
        reason = "too deeply nested"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TemplateError(f"line {line} of template {_excerpt(src)}: {reason}")


def _excerpt(src: str, width: int = 60) -> str:
    text = src if len(src) <= width else src[: width - 3] + "..."
    return repr(text)


_Part = str | tuple[str, ...]
"""A part of a simple template: literal text, or a name and the keys below it (``call.to``)."""

_PLAIN_SCALARS: Final = (str, int, float, bool)
_DICT_ATTRIBUTES: Final = frozenset(dir(dict))
_JINJA_NAMES: Final = frozenset({"self", "loop", "caller", "varargs", "kwargs"})
"""Names Jinja's code generator may bind itself (``{{ self }}`` is the template), never context lookups."""


class CompiledTemplate:
    """A template compiled once; plain text keeps no Jinja object at all.

    A template made only of text and ``{{ name }}`` / ``{{ name.key.key }}`` outputs (most of a flow's
    templates: ``{{ sales_number }}``, ``Thanks for calling {{ company }}.``) is also kept as a list of
    parts and rendered by looking the values up directly: Jinja's context for one rendering costs more
    than the rendering itself. Whenever a lookup is not a plain one (a missing name, a key that is also a
    ``dict`` attribute, a value that is not a scalar), the template renders through Jinja instead, so the
    result and every error are Jinja's own.
    """

    __slots__ = ("_parts", "_template", "source")

    def __init__(
        self, source: str, template: jinja2.Template | None, parts: tuple[_Part, ...] | None = None
    ) -> None:
        self.source = source
        self._template = template
        self._parts = parts

    @property
    def is_constant(self) -> bool:
        """Whether rendering always gives the source text (no markup)."""
        return self._template is None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context``; raises TemplateError on an undefined name, a refusal or any failure."""
        template = self._template
        if template is None:
            return self.source
        if self._parts is not None:
            text = _render_parts(self._parts, context)
            if text is not None:
                return text
        size = 0
        parts: list[str] = []
        budget = _LOOP_BUDGET.set([MAX_LOOP_ITERATIONS])
        try:
            for chunk in template.root_render_func(template.new_context(dict(context))):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise SecurityError(f"output is longer than {MAX_OUTPUT} characters")
                parts.append(chunk)
        except Exception as exc:
            raise _wrap_render_error(self.source, exc, template) from None
        finally:
            _LOOP_BUDGET.reset(budget)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r})"


def _render_parts(parts: tuple[_Part, ...], context: Mapping[str, Any]) -> str | None:
    """A simple template rendered by direct lookups, or None when Jinja must render it."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        name, *keys = part
        if name not in context:
            return None
        value = context[name]
        for key in keys:
            if type(value) is not dict or key in _DICT_ATTRIBUTES or key not in value:
                return None
            value = value[key]
        if value is None:
            continue  # as _finalize: an absent optional value renders as nothing
        if type(value) not in _PLAIN_SCALARS:
            return None
        out.append(str(value))
    text = "".join(out)
    return text if len(text) <= MAX_OUTPUT else None


def _simple_parts(tree: jinja2.nodes.Template) -> tuple[_Part, ...] | None:
    """The parts of a template made only of text and name/attribute outputs, else None."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], jinja2.nodes.Output):
        return None
    parts: list[_Part] = []
    for node in tree.body[0].nodes:
        if isinstance(node, jinja2.nodes.TemplateData):
            parts.append(node.data)
            continue
        keys: list[str] = []
        while isinstance(node, jinja2.nodes.Getattr) and node.ctx == "load":
            if node.attr.startswith("_"):
                return None  # the sandbox refuses it: leave the refusal to Jinja
            keys.append(node.attr)
            node = node.node
        if not isinstance(node, jinja2.nodes.Name) or node.ctx != "load" or node.name in _JINJA_NAMES:
            return None
        parts.append((node.name, *reversed(keys)))
    return tuple(parts)


class CompiledExpression:
    """A ``when`` expression compiled once."""

    __slots__ = ("_function", "source")

    def __init__(self, source: str, function: Callable[..., Any]) -> None:
        self.source = source
        self._function = function

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate with ``context``; raises TemplateError on an undefined name, a refusal or any failure."""
        try:
            value = self._function(**context)
        except Exception as exc:
            raise _wrap_render_error(self.source, exc) from None
        if isinstance(value, jinja2.Undefined):
            raise TemplateError(f"expression {_excerpt(self.source)}: {value._undefined_message}")
        return value

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


@lru_cache(maxsize=8192)
def compile_template(src: str) -> CompiledTemplate:
    """Compile ``src`` (cached by source text).

    Raises:
        TemplateSyntaxError: when ``src`` does not parse or breaks a sandbox rule.
    """
    if not is_template(src):
        return CompiledTemplate(src, None)
    tree = _parse(src)
    try:
        code = _ENV.compile(tree, name=_TEMPLATE_NAME, filename=_TEMPLATE_NAME)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter or test
        raise _syntax_error(src, exc) from None
    template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
    return CompiledTemplate(src, template, _simple_parts(tree))


@lru_cache(maxsize=8192)
def compile_expression(src: str) -> CompiledExpression:
    """Compile the ``when`` expression ``src`` (cached by source text).

    Raises:
        TemplateSyntaxError: when ``src`` does not parse or breaks a sandbox rule.
    """
    _parse_expression(src)
    try:
        # What Environment.compile_expression does, with the tree hardened like a template's.
        parser = Parser(_ENV, src, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise jinja2.TemplateSyntaxError(
                "unexpected text after the expression", parser.stream.current.lineno
            )
        body = [jinja2.nodes.Assign(jinja2.nodes.Name("result", "store"), expression, lineno=1)]
        tree = jinja2.nodes.Template(body, lineno=1)
        _Harden().visit(tree)
        template = _ENV.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter or test
        raise _syntax_error(src, exc, offset=0) from None
    return CompiledExpression(src, TemplateExpression(template, False))


def render(src: str | CompiledTemplate, context: Mapping[str, Any]) -> str:
    """Render a template (source or compiled) with ``context``.

    Raises:
        TemplateError: when the template does not parse, names an undefined value or is refused.
    """
    compiled = src if isinstance(src, CompiledTemplate) else compile_template(src)
    return compiled.render(context)


# Values written into a URL template are marked while rendering (private-use characters, removed from the
# values themselves), then encoded or kept by where they landed; see render_url.
_VALUE_START: Final = "\ue000"
_KEPT_START: Final = "\ue002"
_VALUE_END: Final = "\ue001"
_MARKERS_RE: Final = re.compile("[\ue000-\ue002]")
_MARKED: Final = re.compile("([\ue000\ue002])([^\ue001]*)\ue001")


def _url_text(value: Any) -> str:
    value = _finalize(value)
    return _MARKERS_RE.sub("", str(value))


def _url_value(value: Any) -> str:
    return _VALUE_START + _url_text(value) + _VALUE_END


def _url_kept(value: Any) -> str:
    return _KEPT_START + _url_text(value) + _VALUE_END


class _MarkUrlValues(NodeTransformer):
    def visit_Output(self, node: jinja2.nodes.Output) -> jinja2.nodes.Node:
        self.generic_visit(node)
        wrapped: list[jinja2.nodes.Expr] = []
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                wrapped.append(child)
            elif isinstance(child, jinja2.nodes.Filter) and child.name == "urlencode":
                wrapped.append(_imported("_url_kept", child, lineno=child.lineno))  # encoded by its author
            else:
                wrapped.append(_imported("_url_value", child, lineno=child.lineno))
        node.nodes = wrapped
        return node


@lru_cache(maxsize=2048)
def compile_url_template(src: str) -> CompiledTemplate:
    """Compile ``src`` as a URL template for :func:`render_url` (cached by source text).

    Raises:
        TemplateSyntaxError: when ``src`` does not parse or breaks a sandbox rule.
    """
    if not is_template(src):
        return CompiledTemplate(src, None)
    tree = _parse(src)
    _MarkUrlValues().visit(tree)
    try:
        code = _ENV.compile(tree, name=_TEMPLATE_NAME, filename=_TEMPLATE_NAME)
    except jinja2.TemplateSyntaxError as exc:
        raise _syntax_error(src, exc) from None
    # No direct lookups here: every value must pass through the markers that render_url encodes by.
    return CompiledTemplate(src, _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None))


def _past_authority(prefix: str) -> bool:
    rest = prefix.split("://", 1)[1] if "://" in prefix else prefix
    return any(char in rest for char in "/?#")


def render_url(src: str, context: Mapping[str, Any]) -> str:
    """Render a URL template so that values cannot change the URL's shape.

    A value that lands in the path, query or fragment (after the first ``/``, ``?`` or ``#`` that follows
    the host) is percent-encoded, ``/``, ``?``, ``&``, ``=``, ``#`` and ``+`` included: ``?from={{ call.from
    }}`` sends ``%2B1919...`` and digits like ``1&admin=1`` stay one parameter. A value before that (a base
    URL from ``env``: ``{{ env.CRM_URL }}/calls``) is used as written, and so is a value the author already
    passed through ``| urlencode``. The host the URL names is checked by the server's allow-list.

    Raises:
        TemplateError: when the template does not parse, names an undefined value or is refused.
    """
    compiled = compile_url_template(src)
    marked = compiled.render(context)
    if compiled.is_constant:
        return marked
    out: list[str] = []
    position = 0
    for match in _MARKED.finditer(marked):
        out.append(marked[position : match.start()])
        kind, text = match.group(1), match.group(2)
        if kind == _VALUE_START and _past_authority("".join(out)):
            text = quote(text, safe="")
        out.append(text)
        position = match.end()
    out.append(marked[position:])
    return "".join(out)


def evaluate(expr: str | CompiledExpression, context: Mapping[str, Any]) -> Any:
    """Evaluate a ``when`` expression (source or compiled) with ``context`` and return its value.

    Raises:
        TemplateError: when the expression does not parse, names an undefined value or is refused.
    """
    compiled = expr if isinstance(expr, CompiledExpression) else compile_expression(expr)
    return compiled.evaluate(context)


def truthy(expr: str | CompiledExpression, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` guard: the truth value of :func:`evaluate`."""
    return bool(evaluate(expr, context))


def iter_template_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (for checking the templates of ``set`` and ``http.json``)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_template_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_template_strings(item)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value, keeping its shape; numbers and booleans stay as they are.

    Raises:
        TemplateError: when one of the strings fails to render.
    """
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, Mapping):
        return {str(key): render_value(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item, context) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
