"""Bad input always gets diagnostics, never a traceback: valid flows with parts replaced by wrong values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.flow import check_file
from flowengine.flow.loader import read_yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [
    read_yaml(ROOT / "tests" / "flows" / "valid" / name, keep_going=True).data
    for name in ("brief-example.yaml", "every-action.yaml", "messaging.yaml")
]

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 400)
    | st.sampled_from(["", "end", "5s", "1s1m", "{{ x }}", "{{", "+1919", "agent.answer", "speak"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["goto", "do", "when", "speak", "a"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here] if here else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_flow_is_reported_never_raised(data: st.DataObject, tmp_path: Path) -> None:
    flow = copy.deepcopy(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(_paths(flow)))
        parent = flow
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = data.draw(_values)
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(flow), encoding="utf-8")
    report = check_file(path)
    lines = path.read_text(encoding="utf-8").count("\n") + 1
    for diagnostic in report.diagnostics:
        assert diagnostic.path == str(path)
        assert 1 <= diagnostic.line <= lines
        assert diagnostic.column >= 1
