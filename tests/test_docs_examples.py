"""Every YAML block of docs/*.md and README.md is checked, and the language reference covers the schema and the events.

Convention (documented in docs/flow-language.md, "YAML blocks in these docs"):

- a block that is a whole flow (a top-level ``flow:``) must validate with no error and no warning;
- a block whose first line is ``# $defs/NAME`` must satisfy that definition of the flow schema;
- a block whose first line is ``# invalid: TEXT`` must fail with an error containing TEXT.

Scenario files (a top-level ``scenario:``, shown in docs/testing.md) are not flows; tests/testing/test_docs.py
runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flowengine.errors import Diagnostic, FlowSyntaxError
from flowengine.flow import check_file, vocabulary
from flowengine.flow.loader import parse_yaml
from flowengine.flow.schema import definitions, flow_schema, schema_diagnostics

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "flow-language.md"
_FENCE = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
_DEFS = re.compile(r"# \$defs/(\S+)\s*\Z")
_INVALID = re.compile(r"# invalid: (.+?)\s*\Z")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # line of the block's first line in the Markdown file
    text: str

    @property
    def name(self) -> str:
        return f"{self.doc.name}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for doc in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]:
        text = doc.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            block = Block(doc, line, match.group(1))
            if not re.search(r"^scenario:", block.text, re.MULTILINE):
                found.append(block)
    return found


BLOCKS = _blocks()


def _shifted(block: Block, diagnostics: list[Diagnostic]) -> list[str]:
    return [
        f"{block.doc.name}:{d.line + block.line - 1}:{d.column}: {d.severity}: {d.message}"
        for d in diagnostics
    ]


def _whole_flow(block: Block, tmp_path: Path) -> list[Diagnostic]:
    path = tmp_path / "block.yaml"
    path.write_text(block.text, encoding="utf-8")
    return check_file(path).diagnostics


def test_the_docs_have_yaml_blocks_of_every_kind() -> None:
    heads = [block.text.splitlines()[0] for block in BLOCKS]
    assert any(_DEFS.match(head) for head in heads)
    assert any(_INVALID.match(head) for head in heads)
    assert sum(1 for block in BLOCKS if re.search(r"^flow:", block.text, re.MULTILINE)) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_yaml_block(block: Block, tmp_path: Path) -> None:
    head = block.text.splitlines()[0] if block.text else ""
    defs = _DEFS.match(head)
    invalid = _INVALID.match(head)
    if defs:
        assert defs.group(1) in definitions(), f"{block.name}: no schema definition {defs.group(1)!r}"
        try:
            file = parse_yaml(block.text, "block.yaml")
        except FlowSyntaxError as exc:
            pytest.fail("\n".join(_shifted(block, list(exc.diagnostics))))
        problems = file.diagnostics + schema_diagnostics(file, defs.group(1))
        assert _shifted(block, problems) == []
    elif invalid:
        errors = [d.message for d in _whole_flow(block, tmp_path) if d.is_error]
        assert any(invalid.group(1) in message for message in errors), errors
    else:
        assert re.search(r"^flow:", block.text, re.MULTILINE), (
            f"{block.name}: a YAML block is a whole flow, or starts with '# $defs/NAME' or '# invalid: TEXT'"
        )
        assert _shifted(block, _whole_flow(block, tmp_path)) == []


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            names |= set(properties)
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


def _mentioned() -> set[str]:
    text = REFERENCE.read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", text)
    return {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_.-]*", span)}


def test_the_reference_mentions_every_key_of_the_schema() -> None:
    missing = sorted(_property_names(flow_schema()) - _mentioned())
    assert missing == [], f"docs/flow-language.md never mentions (in `code`): {missing}"


def test_the_reference_event_table_lists_every_flow_event() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z.-]+)` \|", text, re.MULTILINE))
    names = {spec.name for spec in vocabulary.EVENTS}
    assert names <= rows, f"missing from the event table: {sorted(names - rows)}"
