"""The flow JSON Schema: well-formed, documented for editors, and turned into messages people can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowengine.flow.loader import parse_yaml
from flowengine.flow.schema import SCHEMA_ID, definitions, flow_schema, schema_diagnostics

ROOT = Path(__file__).resolve().parents[2]


def _objects(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, f"{where}/{index}")


def test_the_schema_is_valid_json_schema_2020_12_with_an_id() -> None:
    schema = flow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID


def test_the_top_level_schemas_directory_holds_the_packaged_file() -> None:
    on_disk = json.loads((ROOT / "schemas" / "flow.schema.json").read_text(encoding="utf-8"))
    assert on_disk == flow_schema()


def test_every_object_with_properties_refuses_unknown_keys() -> None:
    loose = [
        where
        for where, node in _objects(flow_schema())
        if "properties" in node and node.get("additionalProperties") is not False
    ]
    assert loose == []


def test_every_property_has_a_description_and_a_default() -> None:
    missing = []
    for where, node in _objects(flow_schema()):
        for name, prop in (
            node.get("properties", {}).items() if isinstance(node.get("properties"), dict) else ()
        ):
            if "description" not in prop or "default" not in prop:
                missing.append(f"{where}/properties/{name}")
    assert missing == []


def test_fragments_can_be_checked_against_any_definition() -> None:
    assert {"action", "state", "transition", "menu", "fragment", "prompt"} <= set(definitions())
    file = parse_yaml("speak: {text: hi, volume: 9}\n", "snippet.yaml")
    (problem,) = schema_diagnostics(file, "action")
    assert (problem.line, problem.column) == (1, 27)
    assert "maximum of 4" in problem.message


def _errors(text: str) -> list[str]:
    return [f"{d.line}:{d.column} {d.message}" for d in schema_diagnostics(parse_yaml(text, "f.yaml"))]


_HEAD = "flow: f\ninitial: s\nstates:\n  s:\n"


class TestMessages:
    def test_a_mapping_action_is_explained_by_the_action_branch_not_the_bare_names(self) -> None:
        assert _errors(_HEAD + "    do: [{hangpu: {}}]\n") == [
            "5:11 states.s.do[0].hangpu: unknown action 'hangpu' (did you mean 'hangup'?)"
        ]

    def test_an_unknown_bare_action_lists_the_bare_actions(self) -> None:
        (message,) = _errors(_HEAD + "    do: [answr]\n")
        assert message.startswith("5:10 states.s.do[0]: 'answr' is not one of: answer, reject, hangup")
        assert message.endswith("(did you mean 'answer'?)")

    def test_a_value_of_no_accepted_type_names_the_types(self) -> None:
        assert _errors(_HEAD + "    do: [{speak: 5}]\n") == [
            '5:18 states.s.do[0].speak: expected a string or a mapping, got the number 5; put the value in quotes to keep it as written (e.g. "+19195551212" or "0123")'
        ]

    def test_a_long_sentence_says_how_long_it_is(self) -> None:
        (message,) = _errors(_HEAD + f"    do: [{{speak: {'a' * 1001}}}]\n")
        assert message.endswith("is 1001 characters long; at most 1000 are allowed")

    def test_a_missing_required_key_points_at_the_mapping_that_lacks_it(self) -> None:
        assert _errors("flow: f\nstates: {s: {final: true}}\n") == ["1:1 missing required key 'initial'"]

    def test_a_voice_name_is_accepted_in_any_case_and_checked(self) -> None:
        assert (
            _errors(_HEAD + "    do: [{speak: {text: a, voice: Julie}}, {speak: {text: b, voice: julie}}]\n")
            == []
        )
        (message,) = _errors(_HEAD + "    do: [{speak: {text: a, voice: juile}}]\n")
        assert "'juile' is not a voice" in message

    def test_templates_are_accepted_where_an_enumeration_is_expected(self) -> None:
        assert _errors(_HEAD + "    do: [{speak: {text: a, locale: '{{ vars.lang }}'}}]\n") == []


def test_validating_never_changes_the_loaded_schema() -> None:
    before = json.dumps(flow_schema(), sort_keys=True)
    for definition in (None, "fragment", "action", "state"):
        schema_diagnostics(parse_yaml("flow: 5\n", "f.yaml"), definition)
    assert json.dumps(flow_schema(), sort_keys=True) == before


def _loadable(paths: list[Path]) -> list[Path]:
    from flowengine.errors import FlowSyntaxError
    from flowengine.flow.loader import read_yaml

    found = []
    for path in paths:
        try:
            read_yaml(path, keep_going=True)
        except FlowSyntaxError:
            continue
        found.append(path)
    return found


_SAMPLES = _loadable(
    sorted((ROOT / "tests" / "flows").rglob("*.yaml")) + sorted((ROOT / "flows").glob("*.yaml"))
)


@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: p.name)
def test_the_fast_and_the_full_validator_agree(path: Path) -> None:
    from flowengine.flow.loader import is_fragment_data, read_yaml
    from flowengine.flow.schema import _fast, _full

    data = read_yaml(path, keep_going=True).data
    definition = "fragment" if is_fragment_data(data) else None
    try:
        _fast(definition)(data)
        fast_ok = True
    except Exception:
        fast_ok = False
    assert fast_ok == _full(definition).is_valid(data)
