"""The API simulator: a stand-in for Bandwidth's v1 Voice & Messaging API with scripted phones.

``create_app(config)`` builds the aiohttp app (REST under ``/v1``, control API under ``/sim``);
``Simulator`` is the same thing as a Python object for in-process use.
"""

from __future__ import annotations

from flowengine.sim.api import SIM_KEY
from flowengine.sim.app import create_app
from flowengine.sim.callbacks import Delivery, Target
from flowengine.sim.clock import Clock, RealClock, VirtualClock
from flowengine.sim.config import PhoneBehaviour, SimConfig
from flowengine.sim.problems import ApiProblem
from flowengine.sim.simulator import Simulator

__all__ = [
    "SIM_KEY",
    "ApiProblem",
    "Clock",
    "Delivery",
    "PhoneBehaviour",
    "RealClock",
    "SimConfig",
    "Simulator",
    "Target",
    "VirtualClock",
    "create_app",
]
