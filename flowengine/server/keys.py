"""The typed keys under which the server application keeps its parts (``app[DISPATCHER]``...)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final, Protocol

import aiohttp
from aiohttp import web

from flowengine.config import ServeConfig
from flowengine.flow.model import Flow
from flowengine.server.dispatcher import Dispatcher, RuntimeAdapter
from flowengine.server.flows import FlowLibrary
from flowengine.server.metrics import Metrics
from flowengine.store.base import Store


class ReloadableRuntime(RuntimeAdapter, Protocol):
    """A runtime adapter whose flows can be replaced (new sessions get the new versions)."""

    def replace_flows(self, flows: Mapping[str, Flow]) -> None:
        """Use ``flows`` for sessions started from now on; live sessions keep their versions."""
        ...


CONFIG: Final = web.AppKey("config", ServeConfig)
METRICS: Final = web.AppKey("metrics", Metrics)
DISPATCHER: Final = web.AppKey("dispatcher", Dispatcher)
LIBRARY: Final = web.AppKey("library", FlowLibrary)
RUNTIME: Final = web.AppKey("runtime", ReloadableRuntime)
STORE: Final = web.AppKey("store", Store)
HTTP: Final = web.AppKey("http", aiohttp.ClientSession)
RELOAD: Final = web.AppKey("reload", asyncio.Lock)
