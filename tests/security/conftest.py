"""Fixtures: the server tests' fake API and harness (a server app with a small fake runtime), reused here."""

from __future__ import annotations

from server.conftest import fake_api, make_harness

__all__ = ["fake_api", "make_harness"]
