"""The REST resources of the simulated API, one module per resource, each with a ``ROUTES`` table."""

from __future__ import annotations

from flowengine.sim.resources import (
    applications,
    bridges,
    calls,
    conferences,
    media,
    messages,
    numbers,
    recordings,
)
from flowengine.sim.rest import Route

ROUTES: tuple[Route, ...] = (
    *calls.ROUTES,
    *bridges.ROUTES,
    *conferences.ROUTES,
    *recordings.ROUTES,
    *media.ROUTES,
    *messages.ROUTES,
    *applications.ROUTES,
    *numbers.ROUTES,
)
