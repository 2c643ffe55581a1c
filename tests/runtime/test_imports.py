"""The pure core must not pull in the network stack."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["flowengine.runtime", "flowengine.flow.compiler", "flowengine.catapult.events"]
)
def test_importing_the_core_does_not_import_aiohttp(module: str) -> None:
    code = f"import sys, {module}; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
