"""flowengine: run phone and text-message flows written as YAML on the Bandwidth v1 API.

The names below are the public API; everything else may change between releases.
"""

from __future__ import annotations

from flowengine.__about__ import __version__
from flowengine.errors import (
    CatapultAPIError,
    CatapultConnectionError,
    CatapultError,
    CatapultRateLimitError,
    ConfigError,
    Diagnostic,
    FlowCompileError,
    FlowEngineError,
    FlowError,
    FlowSyntaxError,
    FlowValidationError,
    LockTimeoutError,
    ScenarioError,
    StoreError,
    TemplateError,
)

__all__ = [
    "CatapultAPIError",
    "CatapultConnectionError",
    "CatapultError",
    "CatapultRateLimitError",
    "ConfigError",
    "Diagnostic",
    "FlowCompileError",
    "FlowEngineError",
    "FlowError",
    "FlowSyntaxError",
    "FlowValidationError",
    "LockTimeoutError",
    "ScenarioError",
    "StoreError",
    "TemplateError",
    "__version__",
]
