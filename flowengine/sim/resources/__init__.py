"""The REST resources of the simulated API, one module per resource, each with a ``ROUTES`` table."""

from __future__ import annotations

from flowengine.sim.resources import (
    account,
    applications,
    available_numbers,
    bridges,
    calls,
    conferences,
    domains,
    endpoints,
    errors,
    media,
    messages,
    number_info,
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
    *account.ROUTES,
    *available_numbers.ROUTES,
    *domains.ROUTES,
    *endpoints.ROUTES,
    *errors.ROUTES,
    *number_info.ROUTES,
)

CONTROL_ROUTES = (*number_info.CONTROL_ROUTES, *endpoints.CONTROL_ROUTES)
"""Control API routes of the resources above: (method, path, action), registered by ``control.py``."""
