"""Check loaded YAML against ``flow.schema.json`` and turn schema errors into positioned diagnostics.

Valid files take the fast path (a fastjsonschema-compiled validator); only a file that fails it is run
through jsonschema's ``iter_errors``, whose errors we rewrite into messages an author can act on: the key
that is unknown (with a did-you-mean), the key that is missing, the type expected, and for ``anyOf``
choices the branch that matches the value's type rather than a list of every alternative.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from typing import Any, cast

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

from flowengine.errors import Diagnostic
from flowengine.flow.loader import JsonPath, LoadedFile, Mark

SCHEMA_ID = "https://flowengine.dev/schemas/flow.schema.json"


@functools.cache
def flow_schema() -> dict[str, Any]:
    """The flow JSON Schema shipped with the package (``flowengine/schemas/flow.schema.json``)."""
    text = (resources.files("flowengine") / "schemas" / "flow.schema.json").read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


def _schema_for(definition: str | None) -> dict[str, Any]:
    schema = flow_schema()
    if definition is None:
        return schema
    if definition not in schema["$defs"]:
        raise KeyError(definition)
    return {
        "$schema": schema["$schema"],
        "$id": f"{SCHEMA_ID}/{definition}",
        "$defs": schema["$defs"],
        "$ref": f"#/$defs/{definition}",
    }


def _no_remote(uri: str) -> Any:
    # The schema is self-contained: its own $id is answered from the package, and anything else is a bug,
    # never a reason to use the network.
    if uri.partition("#")[0] == SCHEMA_ID:
        return flow_schema()
    raise ValueError(f"the flow schema refers to {uri!r}, outside itself")


@functools.cache
def _fast(definition: str | None) -> Callable[[Any], Any]:
    handlers = {"http": _no_remote, "https": _no_remote}
    # fastjsonschema rewrites the $refs of the schema it is given, so it gets its own copy.
    schema = copy.deepcopy(_schema_for(definition))
    compiled = fastjsonschema.compile(schema, handlers=handlers, use_default=False)
    return cast(Callable[[Any], Any], compiled)


@functools.cache
def _full(definition: str | None) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema_for(definition))


def definitions() -> list[str]:
    """Names of the schema's ``$defs`` entries (the fragments a docs snippet may claim to be)."""
    return sorted(flow_schema()["$defs"])


def schema_diagnostics(file: LoadedFile, definition: str | None = None, data: Any = None) -> list[Diagnostic]:
    """Every schema error of ``file`` (or of ``data`` at the file's root), as sorted diagnostics.

    Args:
        file: the loaded file; its source map places the errors.
        definition: a ``$defs`` name to validate against instead of the whole flow (e.g. ``fragment``).
        data: the value to check; default: the file's data.
    """
    value = file.data if data is None else data
    try:
        _fast(definition)(value)
    except fastjsonschema.JsonSchemaException:
        pass
    else:
        return []
    found: dict[tuple[int, int, str], Diagnostic] = {}
    for error in _full(definition).iter_errors(value):
        for problem in _explain(error):
            diagnostic = _locate(file, problem)
            found.setdefault((diagnostic.line, diagnostic.column, diagnostic.message), diagnostic)
    return sorted(found.values())


# ---------------------------------------------------------------------------------- error rewriting


class _Problem:
    __slots__ = ("at_key", "message", "path")

    def __init__(self, path: JsonPath, message: str, *, at_key: bool = False) -> None:
        self.path = path
        self.message = message
        self.at_key = at_key


def _locate(file: LoadedFile, problem: _Problem) -> Diagnostic:
    mark: Mark = file.key_mark(problem.path) if problem.at_key else file.value_mark(problem.path)
    where = dotted(problem.path)
    message = f"{where}: {problem.message}" if where else problem.message
    return Diagnostic(mark[0], mark[1], mark[2], "error", message, "schema")


def dotted(path: Iterable[str | int]) -> str:
    """``("states", "greet", "do", 1)`` -> ``states.greet.do[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def _explain(error: ValidationError) -> Iterator[_Problem]:
    path: JsonPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = str(error.validator)
    if validator in ("anyOf", "oneOf") and "errorMessage" not in schema and error.context:
        yield from _explain_choice(error)
        return
    if "errorMessage" in schema and validator in ("anyOf", "oneOf", "not", "maxProperties", "minProperties"):
        if validator in ("maxProperties", "minProperties") and _is_action_object(schema):
            yield _action_shape(path, error.instance)
            return
        yield _Problem(path, _with_value(error.instance, schema["errorMessage"]))
        return
    if "propertyNames" in error.relative_schema_path or "propertyNames" in error.absolute_schema_path:
        yield from _explain_key(error, path)
        return
    if validator == "additionalProperties":
        yield from _explain_unknown(error, path, schema)
        return
    if validator == "required":
        instance = cast(dict[str, Any], error.instance)
        missing = [name for name in cast(list[str], error.validator_value) if name not in instance]
        for name in missing:
            yield _Problem(path, f"missing required key {name!r}", at_key=True)
        return
    if validator == "type":
        yield _Problem(path, _type_message(error.validator_value, error.instance))
        return
    if validator == "enum":
        options = cast(list[Any], error.validator_value)
        yield _Problem(path, _enum_message(error.instance, options))
        return
    if validator == "pattern":
        text = schema.get("patternErrorMessage", f"does not match {error.validator_value!r}")
        yield _Problem(path, _with_value(error.instance, text))
        return
    if validator in ("maxLength", "minLength") and isinstance(error.instance, str):
        limit = error.validator_value
        if validator == "maxLength":
            message = f"is {len(error.instance)} characters long; at most {limit} are allowed"
        else:
            message = "must not be empty" if limit == 1 else f"must be at least {limit} characters long"
        yield _Problem(path, message)
        return
    if validator == "uniqueItems":
        yield _Problem(path, f"lists the same value twice: {_duplicates(error.instance)}")
        return
    yield _Problem(path, error.message)


def _explain_choice(error: ValidationError) -> Iterator[_Problem]:
    """An ``anyOf``: report the branch meant for the value's type, or say which types would do."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        index = sub.relative_schema_path[0] if sub.relative_schema_path else 0
        branches.setdefault(cast(int, index), []).append(sub)
    fitting = {
        index: errors for index, errors in branches.items() if not any(_wrong_kind(sub) for sub in errors)
    }
    if not fitting:
        expected: list[str] = []
        for errors in branches.values():
            for sub in errors:
                if sub.validator == "type" and not sub.relative_path:
                    expected.extend(_as_list(sub.validator_value))
        path: JsonPath = tuple(error.absolute_path)
        yield _Problem(path, _type_message(_unique(expected), error.instance))
        return
    best = max(fitting.values(), key=lambda errors: (max(len(e.absolute_path) for e in errors), -len(errors)))
    for sub in best:
        yield from _explain(sub)


def _wrong_kind(error: ValidationError) -> bool:
    """Whether a branch's error says the value is of another kind altogether (a type, or an enum of names)."""
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator == "enum":
        options = cast(list[Any], error.validator_value)
        return not any(_json_type(option) == _json_type(error.instance) for option in options)
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _explain_key(error: ValidationError, path: JsonPath) -> Iterator[_Problem]:
    key = str(error.instance)
    schema = error.schema if isinstance(error.schema, dict) else {}
    text = schema.get("patternErrorMessage", error.message)
    if error.validator == "pattern":
        yield _Problem((*path, key), _with_value(key, text), at_key=True)
    else:
        yield _Problem((*path, key), f"{key!r}: {error.message}", at_key=True)


def _explain_unknown(error: ValidationError, path: JsonPath, schema: Mapping[str, Any]) -> Iterator[_Problem]:
    known = list(schema.get("properties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    extras = [key for key in instance if key not in known]
    is_action = _is_action_object(schema)
    for key in extras:
        if is_action:
            message = f"unknown action {key!r}{_suggest(key, known)}"
        else:
            message = f"unknown key {key!r}{_suggest(key, known)}; expected one of: {', '.join(known)}"
        yield _Problem((*path, key), message, at_key=True)


def _is_action_object(schema: Mapping[str, Any]) -> bool:
    properties = schema.get("properties", {})
    return "speak" in properties and "dial" in properties


def _action_shape(path: JsonPath, instance: Any) -> _Problem:
    if isinstance(instance, dict) and instance:
        names = ", ".join(repr(k) for k in instance)
        message = (
            f"an action is a mapping with exactly one key (the action's name); found {len(instance)}: {names}"
        )
        return _Problem(path, f"{message}. Write each action as its own list item")
    return _Problem(path, "an action is a mapping with exactly one key (the action's name); found none")


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing (null)",
}
_YAML11_BOOLEANS = frozenset(
    {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF"}
)


def _type_message(expected: Any, instance: Any) -> str:
    names = [_TYPE_NAMES.get(name, name) for name in _as_list(expected)]
    if "a number" in names and "an integer" in names:
        names.remove("an integer")
    wanted = " or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1]
    message = f"expected {wanted}, got {_describe(instance)}"
    kinds = _as_list(expected)
    if "string" in kinds and isinstance(instance, int | float) and not isinstance(instance, bool):
        message += '; put the value in quotes to keep it as written (e.g. "+19195551212" or "0123")'
    elif "boolean" in kinds and isinstance(instance, str) and instance in _YAML11_BOOLEANS:
        message += "; write true or false"
    return message


def _describe(instance: Any) -> str:
    if instance is None:
        return "nothing (null)"
    if isinstance(instance, bool):
        return f"the boolean {str(instance).lower()}"
    if isinstance(instance, int | float):
        return f"the number {instance!r}"
    if isinstance(instance, str):
        return f"the string {_short(instance)}"
    if isinstance(instance, list):
        return "a list"
    if isinstance(instance, dict):
        return "a mapping"
    return type(instance).__name__  # pragma: no cover - YAML data holds only the types above


def _enum_message(instance: Any, options: list[Any]) -> str:
    shown = ", ".join(str(option) for option in options)
    if isinstance(instance, str):
        names = [str(option) for option in options]
        return f"{_short(instance)} is not one of: {shown}{_suggest(instance, names)}"
    return f"{_describe(instance)} is not one of: {shown}"


def _with_value(instance: Any, text: str) -> str:
    if isinstance(instance, str):
        return f"{_short(instance)} {text}"
    if isinstance(instance, dict | list):
        return text
    return f"{_describe(instance)} {text}"


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _suggest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _duplicates(items: Any) -> str:
    seen: list[str] = []
    dupes: list[str] = []
    for item in items if isinstance(items, list) else []:
        text = json.dumps(item, sort_keys=True)
        if text in seen and text not in dupes:
            dupes.append(text)
        seen.append(text)
    return ", ".join(dupes)
