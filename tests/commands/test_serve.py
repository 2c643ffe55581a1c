"""``flowengine serve``'s choice of event loop (``--event-loop``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop

from flowengine.commands.serve import loop_factory
from flowengine.config import ServeConfig
from flowengine.errors import ConfigError


def test_asyncio_is_asyncios_own_loop() -> None:
    assert loop_factory("asyncio") is None


@pytest.mark.parametrize("choice", ["uvloop", "auto"])
def test_uvloop_and_auto_run_on_uvloop_when_it_is_installed(choice: str) -> None:
    factory = loop_factory(choice)
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError

    assert loop_factory("auto") is None
    with pytest.raises(ConfigError, match=r"uvloop is not installed \(pip install 'flowengine\[uvloop\]'\)"):
        loop_factory("uvloop")


def test_an_unknown_loop_is_refused_by_the_settings() -> None:
    with pytest.raises(ConfigError, match="event loop 'trio': use auto, asyncio or uvloop"):
        ServeConfig(flows_dir=Path("flows"), event_loop="trio")
