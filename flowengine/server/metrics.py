"""The server's Prometheus metrics, in a registry of their own per application (so tests and several apps in
one process never share counters).

The values are plain Python numbers, read by one collector when the registry is scraped: the server is
single-threaded asyncio, so the lock prometheus_client's ``Counter`` and ``Histogram`` take on every
``inc()`` and ``observe()`` would buy nothing (they were about 2% of the CPU in a profile at full load). The exposition is
the same as theirs: names, help texts, labels, buckets and ``_created`` samples."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

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


def _with_created() -> bool:
    # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics()), read at
    # each scrape as its metrics do; it has no public getter.
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class _CounterChild:
    """A counter's value for one set of label values."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``.

        Raises:
            ValueError: ``amount`` is negative (a counter only goes up).
        """
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class _HistogramChild:
    """A histogram's observations for one set of label values: a count per bucket (not cumulative) and a sum."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose upper bound is at least ``amount`` (a NaN, which
        prometheus_client counts in no bucket, in the first one: durations are never NaN)."""
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


_Child = TypeVar("_Child", _CounterChild, _HistogramChild)


class _Labelled(Generic[_Child]):
    """A metric with labels.

    ``labels()`` of a metric with one label finds the child of a ``str`` value with one dict lookup. Anything
    else (several labels, other types) takes the checks and the ``str()`` conversion of prometheus_client;
    the server's only call with two labels, in ``Metrics.observe_rest``, keeps its children.
    """

    def __init__(self, labelnames: Sequence[str], new_child: Callable[[], _Child]) -> None:
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], _Child] = {}
        """By label values, in the order of ``labelnames``, in the order they were first used."""
        self._new_child: Callable[[], _Child] = new_child
        # Only a metric with one label fills it: for the others every call takes the checks.
        self._by_value: dict[str, _Child] = {}
        self._only = labelnames[0] if len(labelnames) == 1 else ""

    def labels(self, *values: object, **named: object) -> _Child:
        """The child of these label values, given either by position or by name.

        Raises:
            ValueError: the label names or the number of values do not match the metric's, or values are
                given both by position and by name.
        """
        if named:
            value = named.get(self._only) if len(named) == 1 and not values else None
        else:
            value = values[0] if len(values) == 1 else None
        # Exactly str: a subclass may be equal to a str yet have another str().
        if type(value) is str:
            child = self._by_value.get(value)
            if child is not None:
                return child
        return self._checked(values, named)

    def _checked(self, values: tuple[object, ...], named: dict[str, object]) -> _Child:
        if named:
            if values:
                raise ValueError("Can't pass both *args and **kwargs")
            if sorted(named) != sorted(self.labelnames):
                raise ValueError(
                    f"Incorrect label names: {sorted(named)!r}, the metric's are {list(self.labelnames)!r}"
                )
            values = tuple(named[name] for name in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError(
                f"Incorrect label count: {len(values)} values for the labels {list(self.labelnames)!r}"
            )
        key = tuple(str(value) for value in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._new_child()
        if len(self.labelnames) == 1 and type(values[0]) is str:
            self._by_value[values[0]] = child
        return child


class _Family(Protocol):
    """What the collector reads of each metric."""

    def family(self, with_created: bool) -> Metric: ...


class _Counter(_Labelled[_CounterChild]):
    """A counter with labels."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(labelnames, _CounterChild)
        self.name = name
        self.documentation = documentation

    def family(self, with_created: bool) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(values, child.value, created=child.created if with_created else None)
        return family


class _Histogram(_HistogramChild):
    """A histogram without labels."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        upper_bounds = (*buckets, float("inf"))
        super().__init__(upper_bounds)
        self._les = _les(upper_bounds)

    def family(self, with_created: bool) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=())
        _add_histogram(family, (), (), self, self._les, with_created)
        return family


class _LabelledHistogram(_Labelled[_HistogramChild]):
    """A histogram with labels."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        upper_bounds = (*buckets, float("inf"))
        super().__init__(labelnames, lambda: _HistogramChild(upper_bounds))
        self.name = name
        self.documentation = documentation
        self._les = _les(upper_bounds)

    def family(self, with_created: bool) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            _add_histogram(family, self.labelnames, values, child, self._les, with_created)
        return family


def _les(upper_bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label values of these bucket bounds, written as prometheus_client writes them."""
    return tuple(floatToGoString(bound) for bound in upper_bounds)  # type: ignore[no-untyped-call]


def _add_histogram(
    family: HistogramMetricFamily,
    labelnames: tuple[str, ...],
    values: tuple[str, ...],
    child: _HistogramChild,
    les: tuple[str, ...],
    with_created: bool,
) -> None:
    buckets = []
    cumulative = 0.0
    for le, count in zip(les, child.counts, strict=True):
        cumulative += count
        buckets.append((le, cumulative))
    family.add_metric(values, buckets, child.sum)
    if with_created:
        labels = dict(zip(labelnames, values, strict=True))
        family.samples.append(Sample(family.name + "_created", labels, child.created))


class _Gauge:
    """A gauge without labels."""

    __slots__ = ("documentation", "name", "value")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def family(self, with_created: bool) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, value=self.value)


class _Collector:
    """What the registry scrapes: the metrics' families, in the order they were defined."""

    def __init__(self, metrics: Sequence[_Family]) -> None:
        self._metrics = tuple(metrics)

    def collect(self) -> Iterator[Metric]:
        with_created = _with_created()
        for metric in self._metrics:
            yield metric.family(with_created)


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
        self.callbacks = _Counter("flowengine_callbacks", "Callbacks received, by outcome.", ["outcome"])
        self.events = _Counter("flowengine_events", "Events handled, by type.", ["type"])
        self.handling = _Histogram(
            "flowengine_event_handling_seconds",
            "Time from taking a session's lock to committing its new state.",
            _LATENCY_BUCKETS,
        )
        self.rest = _Counter(
            "flowengine_rest_requests",
            "API request attempts, by operation and status.",
            ["operation", "status"],
        )
        self.rest_latency = _LabelledHistogram(
            "flowengine_rest_request_seconds",
            "API request latency, by operation.",
            ["operation"],
            _LATENCY_BUCKETS,
        )
        self.active_sessions = _Gauge(
            "flowengine_active_sessions", "Sessions started by this instance that have not ended."
        )
        self.errors = _Counter("flowengine_errors", "Failures, by kind.", ["kind"])
        self.flows = _Gauge("flowengine_flows_loaded", "Flows currently loaded.")
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            _Collector(
                [
                    self.callbacks,
                    self.events,
                    self.handling,
                    self.rest,
                    self.rest_latency,
                    self.active_sessions,
                    self.errors,
                    self.flows,
                ]
            )
        )
        # One lookup per API request instead of two.
        self._rest_children: dict[tuple[str, str], tuple[_CounterChild, _HistogramChild]] = {}

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
