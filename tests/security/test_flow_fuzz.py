"""Fuzzing the flow pipeline: random and mutated YAML gives a flow or located ``FlowError``s, nothing else.

Every input goes through the whole pipeline a server runs on a flow file (``check_file``: read, parse,
schema, build, lint), then ``compile_flow`` when a flow came out. The only acceptable outcomes are a usable
flow or diagnostics that point into the file; any other exception fails the test, and so does memory growth
past a bound.

Inputs: random bytes (binary, invalid UTF-8), random text over YAML's special characters, the example flows
with text mutations (spans deleted, duplicated, moved, characters inserted, lines swapped, truncations), and
generated hostile documents (alias bombs, deep nesting in flow and block style, huge scalars, many keys).

The CI budget is small (the whole file runs in well under 30 s). For a long run by hand::

    FLOWENGINE_FUZZ_EXAMPLES=20000 python -m pytest tests/security/test_flow_fuzz.py -p no:randomly -q

``FLOWENGINE_FUZZ_EXAMPLES`` sets ``max_examples`` of each property (default 60).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.errors import Diagnostic, FlowError
from flowengine.flow import check_file
from flowengine.flow.compiler import compile_flow
from flowengine.flow.loader import MAX_ALIAS_EXPANSION, MAX_DEPTH, MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FLOWENGINE_FUZZ_EXAMPLES", "60"))
SEEDS = sorted(
    [*ROOT.joinpath("flows").glob("*.yaml"), *ROOT.joinpath("tests", "flows", "valid").glob("*.yaml")]
)
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in SEEDS]
# Characters that change the meaning of YAML, plus a few that only make it wrong.
_YAML_SPECIALS = ":-?[]{},&*!|>'\"%@`#\n\t \\{{}}"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def run_pipeline(path: Path) -> None:
    """Run the server's pipeline on ``path`` and check its outcome is a flow or located diagnostics."""
    report = check_file(path)
    raw = path.read_bytes()
    # A generous bound: CR, CRLF and the end of the file, and YAML's other line breaks (NEL, LS, PS), which
    # PyYAML counts as lines too.
    text = raw.decode("utf-8", errors="replace")
    lines = sum(text.count(brk) for brk in ("\n", "\r", "\x85", "\u2028", "\u2029")) + 2
    for diagnostic in report.diagnostics:
        assert diagnostic.path == str(path), diagnostic
        assert 1 <= diagnostic.line <= lines, diagnostic
        assert diagnostic.column >= 1, diagnostic
        assert diagnostic.message, diagnostic
    if report.flow is not None:
        assert not report.has_errors
        problems: list[Diagnostic] = []
        try:
            compile_flow(report.flow)
        except FlowError as exc:
            problems = list(exc.diagnostics) or [Diagnostic("", 0, 0, "error", "no diagnostics")]
        for diagnostic in problems:
            assert diagnostic.line >= 1, diagnostic
            assert diagnostic.column >= 1, diagnostic
    else:
        assert report.diagnostics or report.is_fragment or report.is_scenario


def write(workdir: Path, name: str, content: bytes | str) -> Path:
    path = workdir / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


# ------------------------------------------------------------------------------------ random inputs


@FUZZ
@given(raw=st.binary(max_size=2048))
def test_random_bytes_are_reported_never_raised(raw: bytes, workdir: Path) -> None:
    run_pipeline(write(workdir, "bytes.yaml", raw))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(_YAML_SPECIALS + "abflowstate01"), max_size=400))
def test_random_yaml_punctuation_is_reported_never_raised(text: str, workdir: Path) -> None:
    run_pipeline(write(workdir, "punct.yaml", text))


@FUZZ
@given(text=st.text(max_size=600))
def test_random_unicode_text_is_reported_never_raised(text: str, workdir: Path) -> None:
    # Surrogates cannot be written as UTF-8; what hypothesis draws of them is replaced.
    run_pipeline(write(workdir, "unicode.yaml", text.encode("utf-8", errors="replace")))


# ----------------------------------------------------------------------------------- mutated flows


@st.composite
def mutated_flow(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        size = len(text)
        start = draw(st.integers(0, size))
        end = draw(st.integers(start, min(size, start + 80)))
        kind = draw(st.sampled_from(["delete", "duplicate", "insert", "move", "swap-lines", "truncate"]))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif kind == "insert":
            noise = draw(st.text(alphabet=st.sampled_from(_YAML_SPECIALS), min_size=1, max_size=6))
            text = text[:start] + noise + text[start:]
        elif kind == "move":
            piece = text[start:end]
            rest = text[:start] + text[end:]
            at = draw(st.integers(0, len(rest)))
            text = rest[:at] + piece + rest[at:]
        elif kind == "swap-lines":
            lines = text.split("\n")
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            text = text[:start]
    return text


@FUZZ
@given(text=mutated_flow())
def test_mutated_example_flows_are_reported_never_raised(text: str, workdir: Path) -> None:
    run_pipeline(write(workdir, "mutated.yaml", text))


@FUZZ
@given(text=mutated_flow(), junk=st.binary(min_size=1, max_size=8), at=st.floats(0, 1))
def test_binary_spliced_into_a_flow_is_reported_never_raised(
    text: str, junk: bytes, at: float, workdir: Path
) -> None:
    raw = text.encode("utf-8")
    cut = int(len(raw) * at)
    run_pipeline(write(workdir, "spliced.yaml", raw[:cut] + junk + raw[cut:]))


# --------------------------------------------------------------------------------- hostile documents


def _alias_bomb(width: int, depth: int) -> str:
    lines = ["flow: bomb", "kind: voice", "initial: a", "a0: &a0 [lol, lol]"]
    for level in range(1, depth + 1):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"states: {{a: {{do: [hangup], vars: *a{depth}}}}}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(width=st.integers(2, 12), depth=st.integers(1, 12))
def test_alias_bombs_are_refused_within_the_expansion_budget(width: int, depth: int, workdir: Path) -> None:
    path = write(workdir, "bomb.yaml", _alias_bomb(width, depth))
    tracemalloc.start()
    try:
        report = check_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"alias expansion used {peak} bytes"
    expanded = sum(width**level for level in range(1, depth + 1)) * 2
    if expanded > MAX_ALIAS_EXPANSION * 2:
        codes = {d.code for d in report.diagnostics}
        assert "alias-budget" in codes, report.diagnostics
    assert report.flow is None  # `vars` inside a state is not in the language either way


def _nested(kind: str, depth: int) -> str:
    if kind == "flow-seq":
        return "flow: deep\nx: " + "[" * depth + "]" * depth + "\n"
    if kind == "flow-map":
        return "flow: deep\nx: " + "{a: " * depth + "1" + "}" * depth + "\n"
    lines = ["flow: deep", "x:"]
    lines.extend("  " * (level + 1) + f"k{level}:" for level in range(depth))
    lines.append("  " * (depth + 1) + "end")
    return "\n".join(lines) + "\n"


_DEPTHS = [
    *(
        (kind, depth)
        for kind in ("flow-seq", "flow-map")
        for depth in (MAX_DEPTH - 2, MAX_DEPTH + 1, 5_000, 200_000)
    ),
    # block nesting costs its indentation: about 1,000 levels fit in the file size limit
    *(("block-map", depth) for depth in (MAX_DEPTH - 2, MAX_DEPTH + 1, 950)),
]


@pytest.mark.parametrize(("kind", "depth"), _DEPTHS)
def test_deep_nesting_is_refused_with_its_line(kind: str, depth: int, workdir: Path) -> None:
    text = _nested(kind, depth)
    assert len(text.encode()) <= MAX_FILE_BYTES
    path = write(workdir, f"deep-{kind}.yaml", text)
    report = check_file(path)
    assert report.flow is None
    errors = report.diagnostics
    assert errors, "a too deep or incomplete flow must be reported"
    if depth > MAX_DEPTH:
        too_deep = [d for d in errors if d.code == "too-deep"]
        assert too_deep, errors
        # the line where the nesting goes past the limit: all on line 2 in flow style, one a line in block
        expected = 2 if kind.startswith("flow") else MAX_DEPTH + 3
        assert too_deep[0].line == expected
    run_pipeline(path)


def test_a_file_over_the_size_limit_is_refused_before_parsing(workdir: Path) -> None:
    path = write(workdir, "huge.yaml", "flow: big\nx: " + "[" * (MAX_FILE_BYTES + 10) + "\n")
    report = check_file(path)
    assert [(d.line, d.column, d.code) for d in report.diagnostics] == [(1, 1, "too-large")]


@pytest.mark.parametrize(
    "scalar",
    [
        pytest.param("a" * (MAX_FILE_BYTES - 200), id="long plain"),
        pytest.param("'" + "b" * (MAX_FILE_BYTES - 200) + "'", id="long quoted"),
        pytest.param("9" * 50_000, id="huge integer"),
        pytest.param("1e99999", id="float overflow"),
        pytest.param("|\n" + "  line\n" * 100_000, id="long literal block"),
        pytest.param("{{ " + "x." * 200_000 + "y }}", id="huge template"),
    ],
)
def test_huge_scalars_are_reported_or_accepted_never_raised(scalar: str, workdir: Path) -> None:
    for where in ("flow", "initial", "speak"):
        if where == "speak":
            text = f"flow: huge\nkind: voice\ninitial: a\nstates:\n  a:\n    do:\n      - speak: {scalar}\n"
        else:
            text = f"{where}: {scalar}\n"
        if len(text.encode()) > MAX_FILE_BYTES:
            continue
        run_pipeline(write(workdir, f"scalar-{where}.yaml", text))


def _many_keys(count: int) -> Iterator[str]:
    yield "flow: wide\nkind: voice\ninitial: s0\nstates:\n"
    for index in range(count):
        yield f"  s{index}:\n    do: [hangup]\n    on: {{hangup: s{(index + 1) % count}}}\n"


def test_thousands_of_states_load_and_compile(workdir: Path) -> None:
    path = write(workdir, "wide.yaml", "".join(_many_keys(3_000)))
    report = check_file(path)
    run_pipeline(path)
    assert report.flow is not None or report.diagnostics


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("!!python/object/apply:os.system ['echo pwned']\n", id="python tag"),
        pytest.param("flow: !!python/name:os.system x\n", id="python name tag"),
        pytest.param("flow: !custom x\n", id="custom tag"),
        pytest.param("<<: {flow: x}\n", id="merge key"),
        pytest.param("a: &a [*a]\n", id="self alias"),
        pytest.param("? [complex, key]\n: value\n", id="complex key"),
        pytest.param("%YAML 1.1\n---\nflow: x\n", id="directive"),
        pytest.param("flow: x\n---\nflow: y\n", id="two documents"),
        pytest.param("\ufeffflow: x\r\nkind: voice\r\n", id="bom and crlf"),
        pytest.param("flow: \x00\n", id="nul"),
        pytest.param("flow: x\n\tkind: voice\n", id="tab"),
    ],
)
def test_dangerous_yaml_features_are_refused_with_a_location(text: str, workdir: Path) -> None:
    path = write(workdir, "features.yaml", text)
    run_pipeline(path)
    report = check_file(path)
    assert report.flow is None
    assert report.has_errors


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("9" * 50_000, id="50,000 digits"),
        pytest.param("9223372036854775808", id="2**63"),
        pytest.param("-9223372036854775809", id="below -2**63"),
        pytest.param("0x1" + "0" * 16, id="hexadecimal"),
        pytest.param("0o" + "7" * 23, id="octal"),
    ],
)
def test_an_integer_beyond_64_bits_is_reported_at_its_position(number: str, workdir: Path) -> None:
    # Found by this file: 50,000 digits made the loader raise Python's int conversion ValueError.
    path = write(workdir, "number.yaml", f"flow: n\nvars:\n  big: {number}\n")
    report = check_file(path)
    found = [d for d in report.diagnostics if d.code == "number"]
    assert [(d.line, d.column) for d in found] == [(3, 8)]
    assert "does not fit in 64 bits" in found[0].message


def test_integers_at_the_64_bit_limits_are_kept(workdir: Path) -> None:
    text = "flow: n\nkind: voice\ninitial: a\nvars: {hi: 9223372036854775807, lo: -9223372036854775808}\n"
    text += "states: {a: {do: [hangup]}}\n"
    report = check_file(write(workdir, "limits.yaml", text))
    assert report.flow is not None, report.diagnostics
    assert report.flow.vars == {"hi": 2**63 - 1, "lo": -(2**63)}
