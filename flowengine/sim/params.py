"""Request bodies of the simulated API, read through tables of field specs.

The reference's own examples send booleans and numbers as strings (``"true"``, ``"5"``), so each spec
coerces them. A wrong value is a 400 naming the property; a missing required one is the reference's
``missing-property`` error. Properties the table does not know are ignored, as a lenient server would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from flowengine.sim.problems import ApiProblem, validation
from flowengine.typing import JSON, JSONObject

Kind = Literal["str", "bool", "int", "float", "object", "list", "strlist", "any"]

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SIP_URI = re.compile(r"^sip:[^@\s]+@[^\s]+$")


@dataclass(frozen=True, slots=True)
class Field:
    """How one property of a request body is read and checked."""

    name: str
    kind: Kind = "str"
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    allow_blank: bool = True


def read_body(resource: str, fields: Sequence[Field], body: JSON) -> JSONObject:
    """Check ``body`` against ``fields`` and return the properties it sends, coerced to their kinds.

    Args:
        resource: the resource's name for messages (``call``, ``gather``...).
        fields: the table of known properties.
        body: the decoded JSON body.

    Raises:
        ApiProblem: 400 naming the first offending property.
    """
    if not isinstance(body, dict):
        raise validation(f"The {resource} request body must be a JSON object")
    result: JSONObject = {}
    for spec in fields:
        if spec.name not in body or body[spec.name] is None:
            if spec.required:
                raise missing_property(resource, spec.name)
            continue
        result[spec.name] = _coerce(resource, spec, body[spec.name])
    return result


def missing_property(resource: str, name: str) -> ApiProblem:
    """400 ``missing-property`` worded as in the reference."""
    return ApiProblem(
        400,
        "bad-request",
        "missing-property",
        f"The '{resource}' resource property '{name}' is required but was not specified",
        details=[{"name": "property", "value": name}],
    )


def _coerce(resource: str, spec: Field, value: JSON) -> JSON:
    where = f"The '{resource}' resource property '{spec.name}'"
    if spec.kind == "any":
        return value
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise validation(f"{where} must be true or false, not {value!r}", spec.name)
    if spec.kind in ("int", "float"):
        number = _number(value)
        if number is None or (spec.kind == "int" and number != int(number)):
            noun = "a whole number" if spec.kind == "int" else "a number"
            raise validation(f"{where} must be {noun}, not {value!r}", spec.name)
        if spec.minimum is not None and number < spec.minimum:
            raise validation(f"{where} must be at least {spec.minimum:g}, not {value!r}", spec.name)
        if spec.maximum is not None and number > spec.maximum:
            raise validation(f"{where} must be at most {spec.maximum:g}, not {value!r}", spec.name)
        return int(number) if spec.kind == "int" else number
    if spec.kind == "object":
        if not isinstance(value, dict):
            raise validation(f"{where} must be an object, not {value!r}", spec.name)
        return value
    if spec.kind == "list":
        if not isinstance(value, list):
            raise validation(f"{where} must be a list, not {value!r}", spec.name)
        return value
    if spec.kind == "strlist":
        items: list[JSON] = list(value) if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise validation(f"{where} must be a string or a list of strings, not {value!r}", spec.name)
        return items
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise validation(f"{where} must be a string, not {value!r}", spec.name)
    text = str(value)
    if not text and not spec.allow_blank:
        raise ApiProblem(
            400,
            "bad-request",
            "blank-property",
            f"{where} must not be blank",
            details=[{"name": "property", "value": spec.name}],
        )
    if spec.choices and text not in spec.choices:
        allowed = ", ".join(repr(choice) for choice in spec.choices)
        raise validation(f"{where} must be one of {allowed}, not {text!r}", spec.name)
    if spec.max_length is not None and len(text) > spec.max_length:
        raise validation(f"{where} must be at most {spec.max_length} characters long", spec.name)
    if spec.pattern is not None and text and not spec.pattern.match(text):
        raise validation(f"{where} must be {spec.pattern_hint}, not {text!r}", spec.name)
    return text


def _number(value: JSON) -> float | None:
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    # NaN and infinities compare false with every bound, so they would slip through the range checks.
    return number if math.isfinite(number) else None


def query_int(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """A whole-number query parameter such as ``page`` or ``size``, checked."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation(f"The query parameter '{name}' must be a whole number, not {raw!r}", name) from None
    if value < 0 or value > maximum:
        raise validation(f"The query parameter '{name}' must be between 0 and {maximum}, not {value}", name)
    return value
