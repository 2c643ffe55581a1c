"""Read flow YAML into plain data plus a source map, refusing the YAML features that make files lie.

pyyaml composes the file into nodes (with libyaml's C parser when present); we then build the data
ourselves so we can record where every key and value was written, reject duplicate keys, budget alias
expansion, and read scalars the YAML 1.2 way: ``on``/``yes``/``no``/``off`` are strings, ``true``/``false``
are booleans, and mapping keys are always strings (``1:`` and ``"1":`` are the same DTMF key).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from flowengine.errors import Diagnostic, FlowSyntaxError
from flowengine.flow import model
from flowengine.typing import JSON

_PLAIN_TAGS = {
    yaml.ScalarNode: "tag:yaml.org,2002:str",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
    yaml.MappingNode: "tag:yaml.org,2002:map",
}


class _NoResolve:
    """Skip pyyaml's YAML 1.1 tag resolution: we read plain scalars the YAML 1.2 way ourselves."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        return _PLAIN_TAGS[kind]


try:  # libyaml is ~7x faster; the pure-Python loader gives the same nodes and marks

    class _Loader(_NoResolve, yaml.CSafeLoader):
        pass

except AttributeError:  # pragma: no cover - pyyaml built without libyaml

    class _Loader(_NoResolve, yaml.SafeLoader):  # type: ignore[no-redef]
        pass


MAX_FILE_BYTES = 1024 * 1024
"""Flow files above this size are refused before parsing."""

MAX_ALIAS_EXPANSION = 10_000
"""At most this many nodes may be produced by expanding aliases (a billion-laughs file fails fast)."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted."""

# Above this many opening brackets a file could nest deeply enough to exhaust the C parser's stack, so we
# check its depth on the event stream first (block nesting is bounded by indentation and the size limit).
_BRACKET_CHECK = 4000

JsonPath = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the root."""

Mark = tuple[str, int, int]
"""A source position: display path, 1-based line, 1-based column."""

_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_ScalarNode = yaml.ScalarNode
_IMPLICIT_TAGS = frozenset(
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge", "value")
)
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)\Z")
_NUMBER_START = frozenset("0123456789+-.")


@dataclass(slots=True)
class LoadedFile:
    """One YAML file read into data, with the position of every value and every mapping key."""

    path: str
    data: dict[str, JSON]
    values: dict[JsonPath, Mark]
    keys: dict[JsonPath, Mark]
    digest: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    """Problems that did not stop the reading (a duplicate key keeps its first value, for instance)."""

    def value_mark(self, path: JsonPath) -> Mark:
        """Position of the value at ``path``, or of its closest ancestor that has one."""
        return _closest(self.values, path, (self.path, 1, 1))

    def key_mark(self, path: JsonPath) -> Mark:
        """Position of the key naming ``path`` (falls back to its value's position)."""
        mark = self.keys.get(path)
        return mark if mark is not None else self.value_mark(path)


@dataclass(slots=True)
class LoadedDocument:
    """A flow file with its included files merged in, ready for ``validate_flow`` and ``build_flow``.

    ``data`` is the merged flow (states, ``on`` handlers and ``vars`` of included files added to the root's);
    ``diagnostics`` holds problems found while including (missing files, names defined twice).
    """

    path: str
    root: LoadedFile
    included: list[LoadedFile] = field(default_factory=list)
    data: dict[str, JSON] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    owners: dict[tuple[str, str], LoadedFile] = field(default_factory=dict)
    validation: list[Diagnostic] | None = None
    """What ``validate_flow`` found (None until it ran)."""
    flow: model.Flow | None = None
    """The flow ``validate_flow`` built: complete when the document passed the schema, else partial."""
    partial: bool = False
    """Whether ``flow`` was built from data that failed the schema (some parts left out)."""

    @property
    def is_fragment(self) -> bool:
        """A file without ``flow:`` that only offers states (and handlers, vars) to include."""
        return is_fragment_data(self.root.data)

    @property
    def files(self) -> list[LoadedFile]:
        return [self.root, *self.included]

    @property
    def digest(self) -> str:
        """Hash of the content of the root file and every file it includes."""
        if not self.included:
            return self.root.digest
        joined = "".join(f.digest for f in self.files)
        return hashlib.sha256(joined.encode()).hexdigest()

    def file_for(self, path: JsonPath) -> LoadedFile:
        """The file that wrote the element at ``path`` of the merged data."""
        if len(path) >= 2 and isinstance(path[0], str) and isinstance(path[1], str):
            owner = self.owners.get((path[0], path[1]))
            if owner is not None:
                return owner
        return self.root

    def value_mark(self, path: JsonPath) -> Mark:
        return self.file_for(path).value_mark(path)

    def key_mark(self, path: JsonPath) -> Mark:
        return self.file_for(path).key_mark(path)


_FLOW_ONLY_KEYS = frozenset({"flow", "kind", "initial", "numbers", "defaults", "version"})


def is_scenario_data(data: Mapping[str, Any]) -> bool:
    """Whether top-level ``data`` is a scenario for ``flowengine test`` (it has a ``scenario:`` key)."""
    return "scenario" in data


def is_fragment_data(data: Mapping[str, Any]) -> bool:
    """Whether top-level ``data`` is an include fragment rather than a flow (it names none of a flow's keys)."""
    return not any(key in data for key in _FLOW_ONLY_KEYS)


def _closest(table: dict[JsonPath, Mark], path: JsonPath, default: Mark) -> Mark:
    while True:
        mark = table.get(path)
        if mark is not None:
            return mark
        if not path:
            return default
        path = path[:-1]


# ------------------------------------------------------------------------------------------- reading


def read_yaml(
    path: str | os.PathLike[str], display: str | None = None, *, keep_going: bool = False
) -> LoadedFile:
    """Read one YAML file whose document is a mapping.

    With ``keep_going``, duplicate keys (the first value is kept), unsupported tags, merge keys, alias
    cycles and too deep nesting do not stop the reading: they are in the file's ``diagnostics``, so one run
    reports them with every other problem of the file. Without it they raise like the rest.

    Raises:
        FlowSyntaxError: unreadable, too large, not UTF-8, not YAML, several documents, not a mapping, or
            too many alias expansions (and, without ``keep_going``, any of the problems above).
    """
    shown = display if display is not None else str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FlowSyntaxError([_diag(shown, 1, 1, f"cannot read file: {reason}", "io")]) from None
    if len(raw) > MAX_FILE_BYTES:
        message = f"file is larger than {MAX_FILE_BYTES // 1024} KiB; flow files this large are refused"
        raise FlowSyntaxError([_diag(shown, 1, 1, message, "too-large")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FlowSyntaxError([_diag(shown, line, column, "file is not valid UTF-8", "encoding")]) from None
    loaded = parse_yaml(text, shown, hashlib.sha256(raw).hexdigest())
    if loaded.diagnostics and not keep_going:
        raise FlowSyntaxError(loaded.diagnostics)
    return loaded


def parse_yaml(
    text: str, path: str, digest: str | None = None, *, loader_class: type[Any] | None = None
) -> LoadedFile:
    """Parse YAML ``text`` (shown as ``path`` in messages); see ``read_yaml`` for what is refused.

    ``loader_class`` picks the pyyaml loader (default: libyaml's ``CSafeLoader`` when present, else
    ``SafeLoader``); both give the same data and positions.
    """
    if digest is None:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    loader_type = loader_class if loader_class is not None else _Loader
    if text.count("[") + text.count("{") > _BRACKET_CHECK:
        _check_depth(text, path, loader_type)
    loader = loader_type(text)
    with _collector_paused():
        return _compose_and_build(loader, text, path, digest)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # Composing and building allocate thousands of short-lived, acyclic containers; letting the cyclic
    # collector scan them (and everything else alive) every 700 allocations costs more than the parse.
    # Refcounting still frees them; any cycle made meanwhile is collected once the collector is back.
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compose_and_build(loader: Any, text: str, path: str, digest: str) -> LoadedFile:
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise FlowSyntaxError([_yaml_error(exc, path, text)]) from None
    except yaml.YAMLError as exc:
        raise FlowSyntaxError([_diag(path, 1, 1, f"not valid YAML: {exc}", "yaml")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise FlowSyntaxError(
            [_diag(path, 1, 1, "the file is empty; a flow is a YAML mapping", "not-mapping")]
        )
    if not isinstance(node, yaml.MappingNode):
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        message = f"the document is {kind}; a flow file must be a mapping of keys (flow:, states:, ...)"
        raise FlowSyntaxError([_diag(path, line, column, message, "not-mapping")])
    builder = _Builder(path)
    data = builder.mapping(node, ())
    return LoadedFile(
        path=path,
        data=data,
        values=builder.values,
        keys=builder.keys,
        digest=digest,
        diagnostics=builder.problems,
    )


def _check_depth(text: str, path: str, loader_type: type[Any]) -> None:
    loader = loader_type(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
                    message = f"nesting deeper than {MAX_DEPTH} levels is refused"
                    raise FlowSyntaxError([_diag(path, line, column, message, "too-deep")])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):
            # libyaml >= 0.2.5 (PyYAML 6.0.4 wheels) scans ahead and stops at its own limit first.
            mark = exc.problem_mark
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            message = f"nesting deeper than {MAX_DEPTH} levels is refused"
            raise FlowSyntaxError([_diag(path, line, column, message, "too-deep")]) from None
        raise FlowSyntaxError([_yaml_error(exc, path, text)]) from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.MarkedYAMLError, path: str, text: str = "") -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "not valid YAML"
    if _char_at(text, line, column) == "\t":
        message = "YAML syntax error: a tab character; YAML is indented with spaces, never tabs"
        return _diag(path, line, column, message, "yaml")
    if "expected a single document" in f"{exc.context} {problem}":
        message = "the file holds several YAML documents ('---'); a flow file holds exactly one"
        return _diag(path, line, column, message, "multiple-documents")
    message = f"YAML syntax error: {problem}"
    start = exc.context_mark
    if exc.context and start is not None and (start.line + 1, start.column + 1) != (line, column):
        message += f" ({exc.context} started at line {start.line + 1}, column {start.column + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    return _diag(path, line, column, message, "yaml")


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line)
    if len(lines) < line:
        return ""
    row = lines[line - 1]
    return row[column - 1] if 0 < column <= len(row) else ""


def _diag(path: str, line: int, column: int, message: str, code: str) -> Diagnostic:
    return Diagnostic(path, line, column, "error", message, code)


class _Builder:
    """Turns composed nodes into JSON-like data, recording positions and collecting problems."""

    __slots__ = ("active", "alias_depth", "expanded", "keys", "path", "problems", "seen", "values")

    def __init__(self, path: str) -> None:
        self.path = path
        self.values: dict[JsonPath, Mark] = {}
        self.keys: dict[JsonPath, Mark] = {}
        self.problems: list[Diagnostic] = []
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.expanded = 0
        self.alias_depth = 0

    def _mark(self, node: yaml.Node) -> Mark:
        start = node.start_mark
        return (self.path, start.line + 1, start.column + 1)

    def _problem(self, node: yaml.Node, message: str, code: str) -> None:
        start = node.start_mark
        self.problems.append(_diag(self.path, start.line + 1, start.column + 1, message, code))

    def value(self, node: yaml.Node, where: JsonPath) -> JSON:
        ident = id(node)
        if ident in self.active:
            self._problem(node, "an alias refers to the collection that contains it (a cycle)", "alias-cycle")
            return None
        is_alias = not isinstance(node, yaml.ScalarNode) and ident in self.seen
        if is_alias:
            self.alias_depth += 1
        try:
            if self.alias_depth:
                self.expanded += 1
                if self.expanded > MAX_ALIAS_EXPANSION:
                    message = f"aliases expand to more than {MAX_ALIAS_EXPANSION} values; refusing the file"
                    raise FlowSyntaxError([*self.problems, _diag(*self._mark(node), message, "alias-budget")])
            self.values[where] = self._mark(node)
            if isinstance(node, yaml.ScalarNode):
                return self._scalar(node)
            if len(where) > MAX_DEPTH:
                self._problem(node, f"nesting deeper than {MAX_DEPTH} levels is refused", "too-deep")
                return None
            self.seen.add(ident)
            self.active.add(ident)
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, where)
                if isinstance(node, yaml.SequenceNode):
                    return self._sequence(node, where)
            finally:
                self.active.discard(ident)
            return None  # pragma: no cover - composed nodes are always one of the three kinds
        finally:
            if is_alias:
                self.alias_depth -= 1

    def mapping(self, node: yaml.MappingNode, where: JsonPath) -> dict[str, JSON]:
        # The hot loop of loading: scalars are handled inline (no call, no alias bookkeeping) unless an
        # alias is being expanded, where every value must be counted against the budget.
        path, keys, values = self.path, self.keys, self.values
        start = node.start_mark
        values[where] = (path, start.line + 1, start.column + 1)
        if node.tag != _MAP_TAG:
            self._problem(node, f"YAML tag {node.tag!r} is not supported; write a plain mapping", "tag")
        result: dict[str, JSON] = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not _ScalarNode:
                self._problem(key_node, "a mapping key must be a plain string, not a list or mapping", "key")
                continue
            key = key_node.value
            if key == "<<" and not key_node.style and key_node.tag in _IMPLICIT_TAGS:
                message = (
                    "YAML merge keys ('<<') are not supported; repeat the keys or use an alias per value"
                )
                self._problem(key_node, message, "merge-key")
                continue
            child = (*where, key)
            if key in result:
                _, line, column = keys[child]
                message = f"duplicate key {key!r} (first defined at line {line}, column {column})"
                self._problem(key_node, message, "duplicate-key")
                continue
            start = key_node.start_mark
            keys[child] = (path, start.line + 1, start.column + 1)
            if value_node.__class__ is _ScalarNode and not self.alias_depth:
                start = value_node.start_mark
                values[child] = (path, start.line + 1, start.column + 1)
                result[key] = self._scalar(value_node)
            else:
                result[key] = self.value(value_node, child)
        return result

    def _sequence(self, node: yaml.SequenceNode, where: JsonPath) -> list[JSON]:
        if node.tag != _SEQ_TAG:
            self._problem(node, f"YAML tag {node.tag!r} is not supported; write a plain list", "tag")
        path, values = self.path, self.values
        result: list[JSON] = []
        for index, item in enumerate(node.value):
            child = (*where, index)
            if item.__class__ is _ScalarNode and not self.alias_depth:
                start = item.start_mark
                values[child] = (path, start.line + 1, start.column + 1)
                result.append(self._scalar(item))
            else:
                result.append(self.value(item, child))
        return result

    def _scalar(self, node: yaml.ScalarNode) -> JSON:
        text: str = node.value
        if (
            node.style
        ):  # quoted or block scalar (plain is None, or '' from libyaml): a string, whatever it looks like
            if node.tag != _TAG + "str":
                self._problem(node, f"YAML tag {node.tag!r} is not supported", "tag")
            return text
        if node.tag not in _IMPLICIT_TAGS:
            self._problem(node, f"YAML tag {node.tag!r} is not supported", "tag")
            return text
        try:
            return resolve_plain(text)
        except ValueError as exc:
            self._problem(node, str(exc), "number")
            return None


MAX_INT: Final = 2**63 - 1
"""Integers must fit in 64 bits (sessions are stored as JSON that other tools read); larger ones are refused."""


def _checked_int(text: str, digits: str, base: int) -> int:
    # Decimal conversion of a huge literal is quadratic (Python refuses above 4,300 digits): check the length
    # first. 64 bits need at most 19 decimal, 22 octal or 16 hexadecimal digits once leading zeros are gone.
    significant = digits.lstrip("0")
    if len(significant) <= {10: 19, 8: 22, 16: 16}[base]:
        value = int(text, base) if base == 10 else int(digits, base)
        if -MAX_INT - 1 <= value <= MAX_INT:
            return value
    shown = text if len(text) <= 30 else text[:27] + "..."
    raise ValueError(
        f"the number {shown} does not fit in 64 bits ({len(significant)} digits); quote it to use it as text"
    )


def resolve_plain(text: str) -> JSON:
    """The value of a plain (unquoted) scalar under YAML 1.2's core schema.

    Raises:
        ValueError: an integer that does not fit in 64 bits.
    """
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text[0] not in _NUMBER_START:
        return text
    if _INT.match(text):
        return _checked_int(text, text.lstrip("+-"), 10)
    if _OCT.match(text):
        return _checked_int(text, text[2:], 8)
    if _HEX.match(text):
        return _checked_int(text, text[2:], 16)
    if _FLOAT.match(text) and text not in {".", "+.", "-."}:
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


# ------------------------------------------------------------------------------------------ includes


def load_flow(path: str | os.PathLike[str]) -> LoadedDocument:
    """Read a flow (or include fragment) file and every file it includes, merged into one document.

    Args:
        path: the file; messages show it as given.

    Returns:
        The merged document. Problems found in included files (unreadable, bad YAML, a state or handler
        defined twice) are in ``diagnostics``; ``validate_flow`` reports them with its own.

    Raises:
        FlowSyntaxError: the file itself cannot be read as a YAML mapping.
    """
    root = read_yaml(path, os.fspath(path), keep_going=True)
    document = LoadedDocument(
        path=root.path, root=root, data=dict(root.data), diagnostics=list(root.diagnostics)
    )
    for section in _MERGED:
        value = root.data.get(section)
        if isinstance(value, dict):
            document.data[section] = dict(value)
            for name in value:
                document.owners[(section, name)] = root
    env = root.data.get("env")
    if isinstance(env, list):
        document.data["env"] = list(env)
    visited = {os.path.realpath(path)}
    _include(document, root, visited)
    return document


_MERGED = ("states", "on", "vars")


def _include(document: LoadedDocument, parent: LoadedFile, visited: set[str]) -> None:
    includes = parent.data.get("include")
    if not isinstance(includes, list):
        return
    base = os.path.dirname(parent.path)
    for index, entry in enumerate(includes):
        if not isinstance(entry, str) or not entry:
            continue  # the schema reports it
        shown = os.path.normpath(os.path.join(base, entry))
        real = os.path.realpath(shown)
        if real in visited:
            continue  # included already (diamond or cycle): its names are in once
        visited.add(real)
        file, line, column = parent.value_mark(("include", index))
        if not Path(shown).is_file():
            message = f"included file {entry!r} does not exist (looked for {shown!r})"
            document.diagnostics.append(Diagnostic(file, line, column, "error", message, "include"))
            continue
        try:
            loaded = read_yaml(shown, shown, keep_going=True)
        except FlowSyntaxError as exc:
            document.diagnostics.extend(exc.diagnostics)
            continue
        if not is_fragment_data(loaded.data):
            message = (
                f"included file {entry!r} is a flow; only fragments (states, on, vars, env) can be included"
            )
            document.diagnostics.append(Diagnostic(file, line, column, "error", message, "include"))
            continue
        document.included.append(loaded)
        document.diagnostics.extend(loaded.diagnostics)
        _merge(document, loaded)
        _include(document, loaded, visited)


def _merge(document: LoadedDocument, loaded: LoadedFile) -> None:
    for section in _MERGED:
        value = loaded.data.get(section)
        if not isinstance(value, dict):
            continue
        target = document.data.setdefault(section, {})
        if not isinstance(target, dict):
            continue  # the root's section has the wrong type; the schema reports it
        for name, item in value.items():
            owner = document.owners.get((section, name))
            if owner is not None:
                document.diagnostics.extend(_defined_twice(section, name, owner, loaded))
                continue
            target[name] = item
            document.owners[(section, name)] = loaded
    env = loaded.data.get("env")
    if isinstance(env, list):
        merged = document.data.setdefault("env", [])
        if isinstance(merged, list):
            merged.extend(name for name in env if name not in merged)


_WHAT = {"states": "state", "on": "flow-wide handler", "vars": "variable"}


def _defined_twice(section: str, name: str, first: LoadedFile, second: LoadedFile) -> Iterator[Diagnostic]:
    what = _WHAT[section]
    one = first.key_mark((section, name))
    two = second.key_mark((section, name))
    yield Diagnostic(
        *one, "error", f"{what} {name!r} is defined twice: here and at {_at(two)}", "defined-twice"
    )
    yield Diagnostic(
        *two, "error", f"{what} {name!r} is defined twice: here and at {_at(one)}", "defined-twice"
    )


def _at(mark: Mark) -> str:
    return f"{mark[0]}:{mark[1]}:{mark[2]}"
