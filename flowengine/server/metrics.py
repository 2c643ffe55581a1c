"""The server's Prometheus metrics, in a registry of their own per application (so tests and several apps in
one process never share counters)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flowengine.typing import Seconds

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of the text exposition format."""

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class _Counter(Counter):
    """A counter whose ``labels()`` children are remembered: prometheus_client takes a lock and builds a
    key on every call (3 µs), and these run several times per callback with a few fixed values."""

    _children: dict[tuple[Any, ...], _Counter]

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> _Counter:
        key = labelvalues or tuple(labelkwargs.items())
        try:
            children = self._children
        except AttributeError:
            children = self._children = {}
        child = children.get(key)
        if child is None:
            child = children[key] = super().labels(*labelvalues, **labelkwargs)
        return child


class Metrics:
    """Counters, histograms and gauges of one server.

    * ``flowengine_callbacks_total{outcome}``: callbacks received, by how they were answered
      (``handled``, ``started``, ``unknown-call``, ``unknown-event``, ``duplicate``, ``bad-request``,
      ``unauthorized``, ``unavailable``);
    * ``flowengine_events_total{type}``: events handled, by API ``eventType`` (or ``timer``, ``result``...);
    * ``flowengine_event_handling_seconds``: from taking a session's lock to committing its new state;
    * ``flowengine_rest_requests_total{operation,status}`` and ``flowengine_rest_request_seconds{operation}``:
      every attempt of every API request (status ``connection-error`` when there was no answer);
    * ``flowengine_active_sessions``: sessions of this instance that started and have not ended;
    * ``flowengine_errors_total{kind}``: failures (``store``, ``rest``, ``http-action``, ``flow-load``...).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = _Counter(
            "flowengine_callbacks", "Callbacks received, by outcome.", ["outcome"], registry=self.registry
        )
        self.events = _Counter(
            "flowengine_events", "Events handled, by type.", ["type"], registry=self.registry
        )
        self.handling = Histogram(
            "flowengine_event_handling_seconds",
            "Time from taking a session's lock to committing its new state.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rest = Counter(
            "flowengine_rest_requests",
            "API request attempts, by operation and status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.rest_latency = Histogram(
            "flowengine_rest_request_seconds",
            "API request latency, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_sessions = Gauge(
            "flowengine_active_sessions",
            "Sessions started by this instance that have not ended.",
            registry=self.registry,
        )
        self.errors = _Counter("flowengine_errors", "Failures, by kind.", ["kind"], registry=self.registry)
        self.flows = Gauge("flowengine_flows_loaded", "Flows currently loaded.", registry=self.registry)
        # ``labels()`` takes a lock and builds a key on every call; the label values here are few and fixed
        # (operations and statuses), so their children are looked up once. This runs once per API request.
        self._rest_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe_rest(self, operation: str, status: str, seconds: Seconds) -> None:
        """The REST client's observer."""
        children = self._rest_children.get((operation, status))
        if children is None:
            children = self._rest_children[(operation, status)] = (
                self.rest.labels(operation=operation, status=status),
                self.rest_latency.labels(operation=operation),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
