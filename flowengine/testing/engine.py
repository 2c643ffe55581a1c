"""The real runtime for scenarios: the server's ``EngineAdapter`` over ``Engine``, set up for a harness.

Its callback URLs point at an address that never resolves, because a harness hands callbacks over
in-process; the account is the harness's; the environment is the scenario's ``env``, never the process's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flowengine.config import ServeConfig
from flowengine.flow.model import Flow
from flowengine.server.dispatcher import RuntimeAdapter
from flowengine.server.runtime_adapter import EngineAdapter
from flowengine.testing.harness import USER_ID

PUBLIC_URL = "http://flowengine.test"


def make_runtime(flows: Mapping[str, Flow], env: Mapping[str, str]) -> RuntimeAdapter:
    """An ``EngineAdapter`` for ``flows`` that sees exactly ``env`` as its environment."""
    config = ServeConfig(
        flows_dir=Path("."),
        public_url=PUBLIC_URL,
        user_id=USER_ID,
        token="scenario-token",
        secret="scenario-secret",
        simulator=True,
    )
    return EngineAdapter(flows, config, environ=dict(env))
