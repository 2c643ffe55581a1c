"""The YAML loader: positions, YAML 1.2 scalars, and the YAML features it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowengine.errors import FlowSyntaxError
from flowengine.flow.loader import (
    MAX_FILE_BYTES,
    LoadedFile,
    load_flow,
    parse_yaml,
    read_yaml,
    resolve_plain,
)

LOADERS = [
    pytest.param(None, id="default-loader"),
    pytest.param(yaml.SafeLoader, id="pure-python-loader"),
]


def _parse(text: str, loader: type | None = None) -> LoadedFile:
    return parse_yaml(text, "f.yaml", loader_class=loader)


def _codes(file: LoadedFile) -> list[str]:
    return [d.code for d in file.diagnostics]


class TestScalars:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            pytest.param("on", "on", id="on-is-a-string"),
            pytest.param("off", "off", id="off-is-a-string"),
            pytest.param("yes", "yes", id="yes-is-a-string"),
            pytest.param("no", "no", id="no-is-a-string"),
            pytest.param("true", True, id="true"),
            pytest.param("False", False, id="False"),
            pytest.param("~", None, id="tilde-null"),
            pytest.param("null", None, id="null"),
            pytest.param("42", 42, id="int"),
            pytest.param("-7", -7, id="negative-int"),
            pytest.param("0o17", 15, id="octal"),
            pytest.param("0x1F", 31, id="hex"),
            pytest.param("1.5", 1.5, id="float"),
            pytest.param("1e3", 1000.0, id="exponent"),
            pytest.param("1:30", "1:30", id="no-sexagesimal"),
            pytest.param("2024-01-02", "2024-01-02", id="no-timestamp"),
            pytest.param("5s", "5s", id="duration-text"),
            pytest.param("+", "+", id="lone-plus"),
        ],
    )
    def test_plain_scalars_follow_yaml_1_2(self, text: str, value: object) -> None:
        assert resolve_plain(text) == value

    @pytest.mark.parametrize("loader", LOADERS)
    def test_the_on_key_stays_the_string_on(self, loader: type | None) -> None:
        file = _parse("on:\n  hangup: end\nyes: no\n", loader)
        assert file.data == {"on": {"hangup": "end"}, "yes": "no"}

    @pytest.mark.parametrize("loader", LOADERS)
    def test_keys_are_always_strings_as_written(self, loader: type | None) -> None:
        file = _parse('1: a\n"#": b\n0123: c\n"2": d\ntrue: e\n', loader)
        assert list(file.data) == ["1", "#", "0123", "2", "true"]

    def test_quoted_scalars_are_strings_whatever_they_look_like(self) -> None:
        file = _parse("a: '5'\nb: \"true\"\nc: |\n  text\n")
        assert file.data == {"a": "5", "b": "true", "c": "text\n"}


class TestPositions:
    @pytest.mark.parametrize("loader", LOADERS)
    def test_values_and_keys_have_one_based_line_and_column(self, loader: type | None) -> None:
        file = _parse("flow: x\nstates:\n  greet:\n    do: [answer, {speak: hi}]\n", loader)
        assert file.value_mark(("flow",)) == ("f.yaml", 1, 7)
        assert file.key_mark(("states", "greet")) == ("f.yaml", 3, 3)
        assert file.value_mark(("states", "greet", "do", 1, "speak")) == ("f.yaml", 4, 26)

    def test_a_missing_path_falls_back_to_its_closest_ancestor(self) -> None:
        file = _parse("states:\n  a: {}\n")
        assert file.value_mark(("states", "a", "do", 3)) == ("f.yaml", 2, 6)


class TestRefusals:
    def test_a_duplicate_key_is_reported_and_the_first_value_kept(self) -> None:
        file = _parse("a: 1\nb:\n  c: 2\n  c: 3\n")
        assert file.data == {"a": 1, "b": {"c": 2}}
        (problem,) = file.diagnostics
        assert (problem.line, problem.column, problem.code) == (4, 3, "duplicate-key")
        assert "first defined at line 3, column 3" in problem.message

    def test_several_documents_are_refused_at_the_second(self) -> None:
        with pytest.raises(FlowSyntaxError) as caught:
            _parse("a: 1\n---\nb: 2\n")
        (problem,) = caught.value.diagnostics
        assert (problem.line, problem.column, problem.code) == (2, 1, "multiple-documents")

    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            pytest.param("- a\n- b\n", "a list", id="list"),
            pytest.param("just text\n", "a single value", id="scalar"),
        ],
    )
    def test_a_document_that_is_not_a_mapping_is_refused(self, text: str, kind: str) -> None:
        with pytest.raises(FlowSyntaxError) as caught:
            _parse(text)
        assert kind in caught.value.diagnostics[0].message

    def test_an_empty_file_is_refused(self) -> None:
        with pytest.raises(FlowSyntaxError, match="empty"):
            _parse("# nothing here\n")

    def test_a_billion_laughs_fails_on_the_alias_budget(self) -> None:
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
            lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
        with pytest.raises(FlowSyntaxError) as caught:
            _parse("\n".join(lines) + "\n")
        assert caught.value.diagnostics[-1].code == "alias-budget"

    def test_aliases_within_the_budget_are_expanded(self) -> None:
        file = _parse("a: &x {k: [1, 2]}\nb: *x\n")
        assert file.data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}

    def test_an_alias_cycle_is_reported_not_followed(self) -> None:
        file = _parse("a: &a [1, *a]\n")
        assert _codes(file) == ["alias-cycle"]

    def test_deep_bracket_nesting_is_refused_before_the_parser_recurses(self) -> None:
        with pytest.raises(FlowSyntaxError) as caught:
            _parse("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
        assert caught.value.diagnostics[0].code == "too-deep"

    def test_merge_keys_and_custom_tags_are_reported(self) -> None:
        file = _parse("base: &b {x: 1}\nuse:\n  <<: *b\nt: !custom 5\n")
        assert _codes(file) == ["merge-key", "tag"]

    def test_a_yaml_syntax_error_names_where_the_construct_started(self) -> None:
        with pytest.raises(FlowSyntaxError) as caught:
            _parse('a:\n  b: "open\n')
        (problem,) = caught.value.diagnostics
        assert problem.code == "yaml"
        assert "started at line 2, column 6" in problem.message


class TestFiles:
    def test_an_oversized_file_is_refused_without_parsing(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        path.write_text("a: " + "x" * (MAX_FILE_BYTES + 10) + "\n")
        with pytest.raises(FlowSyntaxError) as caught:
            read_yaml(path)
        assert caught.value.diagnostics[0].code == "too-large"

    def test_invalid_utf8_is_reported_at_its_position(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.yaml"
        path.write_bytes(b"a: ok\nb: caf\xe9\n")
        with pytest.raises(FlowSyntaxError) as caught:
            read_yaml(path)
        (problem,) = caught.value.diagnostics
        assert (problem.line, problem.column, problem.code) == (2, 7, "encoding")

    def test_a_missing_file_is_an_io_problem(self, tmp_path: Path) -> None:
        with pytest.raises(FlowSyntaxError) as caught:
            read_yaml(tmp_path / "nope.yaml")
        assert caught.value.diagnostics[0].code == "io"

    def test_includes_merge_states_and_keep_their_own_positions(self, tmp_path: Path) -> None:
        (tmp_path / "parts").mkdir()
        (tmp_path / "parts" / "bye.yaml").write_text("vars: {v: 1}\nstates:\n  bye:\n    final: true\n")
        (tmp_path / "main.yaml").write_text(
            "flow: m\ninclude: [parts/bye.yaml]\ninitial: a\nstates:\n  a: {on: {hangup: bye}}\n"
        )
        document = load_flow(tmp_path / "main.yaml")
        assert set(document.data["states"]) == {"a", "bye"}  # type: ignore[arg-type]
        assert document.data["vars"] == {"v": 1}
        file, line, column = document.key_mark(("states", "bye"))
        assert (Path(file).name, line, column) == ("bye.yaml", 3, 3)
        assert document.diagnostics == []

    def test_an_include_cycle_is_followed_once(self, tmp_path: Path) -> None:
        (tmp_path / "a.yaml").write_text("include: [b.yaml]\nstates: {x: {final: true}}\n")
        (tmp_path / "b.yaml").write_text("include: [a.yaml]\nstates: {y: {final: true}}\n")
        (tmp_path / "main.yaml").write_text("flow: m\ninclude: [a.yaml]\ninitial: x\nstates: {}\n")
        document = load_flow(tmp_path / "main.yaml")
        assert set(document.data["states"]) == {"x", "y"}  # type: ignore[arg-type]

    def test_including_a_flow_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "other.yaml").write_text("flow: other\ninitial: a\nstates: {a: {final: true}}\n")
        (tmp_path / "main.yaml").write_text("flow: m\ninclude: [other.yaml]\ninitial: a\nstates: {}\n")
        document = load_flow(tmp_path / "main.yaml")
        (problem,) = document.diagnostics
        assert (problem.line, problem.column) == (2, 11)
        assert "is a flow" in problem.message


def test_read_yaml_refuses_a_duplicate_key_unless_asked_to_keep_going(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(FlowSyntaxError) as caught:
        read_yaml(path)
    assert caught.value.diagnostics[0].code == "duplicate-key"
    assert read_yaml(path, keep_going=True).data == {"a": 1}


def test_a_tab_in_the_indentation_is_named() -> None:
    with pytest.raises(FlowSyntaxError) as caught:
        _parse("flow: x\nstates:\n\ta: {}\n")
    (problem,) = caught.value.diagnostics
    assert (problem.line, problem.column) == (3, 1)
    assert "never tabs" in problem.message


def test_a_byte_order_mark_and_crlf_line_ends_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_bytes(b"\xef\xbb\xbfflow: w\r\ninitial: a\r\nstates:\r\n  a: {final: true}\r\n")
    file = read_yaml(path)
    assert file.data["flow"] == "w"
    assert file.key_mark(("states", "a")) == (str(path), 4, 3)
