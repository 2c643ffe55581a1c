"""The simulator's aiohttp application: the REST API and the control API around one Simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flowengine.sim.api import SIM_KEY, add_rest_routes
from flowengine.sim.clock import Clock
from flowengine.sim.config import SimConfig
from flowengine.sim.control import add_control_routes
from flowengine.sim.simulator import Simulator


def create_app(config: SimConfig | None = None, clock: Clock | None = None) -> web.Application:
    """Build the simulator app.

    Args:
        config: the settings; ``SimConfig()`` when not given.
        clock: ``RealClock()`` or ``VirtualClock()`` (the default, for tests).

    Returns:
        an app whose Simulator is ``app[SIM_KEY]``; its callback session closes with the app.
    """
    app = web.Application()
    app[SIM_KEY] = Simulator(config, clock)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[SIM_KEY].close()

    app.cleanup_ctx.append(lifecycle)
    add_rest_routes(app)
    add_control_routes(app)
    return app
