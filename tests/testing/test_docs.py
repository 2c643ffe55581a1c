"""Every scenario example in docs/testing.md is a valid scenario that passes against the example flows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowengine.testing.loader import read_scenario
from flowengine.testing.runner import format_failure, run_scenario

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(), re.DOTALL)


def test_the_page_has_scenario_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS)
async def test_each_example_scenario_passes(block: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "flows").symlink_to(ROOT / "flows")
    path = docs / "example.yaml"
    path.write_text(block)
    result = await run_scenario(read_scenario(path))
    assert result.passed, format_failure(result)
