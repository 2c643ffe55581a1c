"""flowengine: run phone and text-message flows written as YAML on the Bandwidth v1 API.

The names below are the public API; everything else may change between releases. Errors are imported
eagerly; everything else is imported on first use, so ``import flowengine`` stays cheap and never pulls in
aiohttp unless a name that needs it (the REST client, the simulator, the server) is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowengine.__about__ import __version__
from flowengine.errors import (
    CallbackParseError,
    CatapultAPIError,
    CatapultConnectionError,
    CatapultError,
    CatapultRateLimitError,
    ConfigError,
    Diagnostic,
    DuplicateEventError,
    FlowCompileError,
    FlowEngineError,
    FlowError,
    FlowSyntaxError,
    FlowValidationError,
    LockTimeoutError,
    ScenarioError,
    StaleLockError,
    StoreError,
    TemplateError,
    TemplateSyntaxError,
)

if TYPE_CHECKING:
    from flowengine.catapult.client import CatapultClient
    from flowengine.catapult.events import parse_callback
    from flowengine.flow import check_file, read_flow, read_flows
    from flowengine.flow.model import Flow
    from flowengine.runtime import Engine, Session
    from flowengine.sim import Simulator, VirtualClock
    from flowengine.store import Store, open_store

_LAZY: dict[str, str] = {
    "CatapultClient": "flowengine.catapult.client",
    "Engine": "flowengine.runtime",
    "Flow": "flowengine.flow.model",
    "Session": "flowengine.runtime",
    "Simulator": "flowengine.sim",
    "Store": "flowengine.store",
    "VirtualClock": "flowengine.sim",
    "check_file": "flowengine.flow",
    "open_store": "flowengine.store",
    "parse_callback": "flowengine.catapult.events",
    "read_flow": "flowengine.flow",
    "read_flows": "flowengine.flow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CallbackParseError",
    "CatapultAPIError",
    "CatapultClient",
    "CatapultConnectionError",
    "CatapultError",
    "CatapultRateLimitError",
    "ConfigError",
    "Diagnostic",
    "DuplicateEventError",
    "Engine",
    "Flow",
    "FlowCompileError",
    "FlowEngineError",
    "FlowError",
    "FlowSyntaxError",
    "FlowValidationError",
    "LockTimeoutError",
    "ScenarioError",
    "Session",
    "Simulator",
    "StaleLockError",
    "Store",
    "StoreError",
    "TemplateError",
    "TemplateSyntaxError",
    "VirtualClock",
    "__version__",
    "check_file",
    "open_store",
    "parse_callback",
    "read_flow",
    "read_flows",
]
