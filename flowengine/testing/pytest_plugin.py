"""A pytest plugin that collects scenario files as tests, so ``pytest`` runs flows' scenarios beside unit tests.

Registered through the ``pytest11`` entry point ``flowengine``; load it by hand with
``pytest -p flowengine.testing.pytest_plugin``. A YAML file (``*.yaml``/``*.yml``) on pytest's paths is a
scenario when its top level has a ``scenario:`` key; each becomes one test item named after the scenario. A
failure shows the step with its ``file:line:col``, expected and actual, and the caller's transcript. An invalid
scenario file is a collection error listing every problem with its position. ``--no-flowengine-scenarios``
turns collection off.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.errors import ScenarioError
from flowengine.testing.scenario import Scenario


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowengine")
    group.addoption(
        "--no-flowengine-scenarios",
        action="store_true",
        default=False,
        help="do not collect flowengine scenario files (*.yaml with a top-level `scenario:` key)",
    )
    parser.addini(
        "flowengine_runtime",
        "module:callable building the runtime adapter for scenarios (default: the engine)",
        default="",
    )
    parser.addini(
        "flowengine_flow_loader",
        "module:callable reading a scenario's flow file (default: flowengine.flow.read_flow)",
        default="",
    )


def _resolve(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"flowengine: cannot import {spec!r}: {exc}") from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    if parent.config.getoption("no_flowengine_scenarios", default=False):
        return None
    from flowengine.testing.loader import looks_like_scenario

    if not looks_like_scenario(file_path):
        return None
    collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
    return collector


class ScenarioFile(pytest.File):
    """One scenario file; yields its single scenario as an item."""

    def collect(self) -> Iterator[pytest.Item]:
        from flowengine.testing.loader import read_scenario

        try:
            scenario = read_scenario(self.path)
        except ScenarioError as exc:
            problems = "\n".join(str(d) for d in exc.diagnostics)
            raise self.CollectError(f"invalid scenario file:\n{problems}") from None
        item: ScenarioItem = ScenarioItem.from_parent(self, name=scenario.name)
        item.scenario = scenario
        yield item


class ScenarioFailed(Exception):
    """A scenario did not go as written; the message is the full report."""


class ScenarioItem(pytest.Item):
    """One scenario, run in-process on the simulator with a virtual clock."""

    scenario: Scenario

    def runtest(self) -> None:
        from flowengine.testing import runner

        options: dict[str, Any] = {}
        runtime = str(self.config.getini("flowengine_runtime"))
        if runtime:
            options["runtime_factory"] = _resolve(runtime)
        loader = str(self.config.getini("flowengine_flow_loader"))
        if loader:
            options["flow_loader"] = _resolve(loader)
        result = asyncio.run(runner.run_scenario(self.scenario, **options))
        if not result.passed:
            raise ScenarioFailed(runner.format_failure(result))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: str | None = None,
    ) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario {self.scenario.name!r} failed:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.pos.line - 1, f"scenario: {self.scenario.name}"
