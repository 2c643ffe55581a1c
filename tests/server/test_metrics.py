"""The server's metrics: plain numbers exposed exactly as prometheus_client's own metrics would be, with
labelled children looked up once and checked as before."""

from __future__ import annotations

import re

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flowengine.server.metrics import Metrics

_LES = [
    "0.0001",
    "0.00025",
    "0.0005",
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "10.0",
    "+Inf",
]


def _observe(metrics: Metrics | _Reference) -> None:
    metrics.callbacks.labels(outcome="handled").inc()
    metrics.callbacks.labels(outcome="handled").inc()
    metrics.callbacks.labels(outcome="started").inc(2.5)
    metrics.events.labels(type="speak").inc()
    metrics.errors.labels(kind="store").inc()
    metrics.handling.observe(0.0003)
    metrics.handling.observe(0.0001)
    metrics.handling.observe(0.7)
    metrics.handling.observe(20)
    metrics.observe_rest("createCall", "201", 0.0004)
    metrics.observe_rest("createCall", "201", 1.0)
    metrics.observe_rest("createCall", "500", 0.002)
    metrics.observe_rest("getCall", "connection-error", 3)
    metrics.active_sessions.inc()
    metrics.active_sessions.inc(3)
    metrics.active_sessions.dec()
    metrics.flows.set(4)


class _Reference:
    """The same metrics built with prometheus_client's own classes, as the server had them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        buckets = [float(le) for le in _LES[:-1]]
        self.callbacks = Counter(
            "flowengine_callbacks", "Callbacks received, by outcome.", ["outcome"], registry=self.registry
        )
        self.events = Counter(
            "flowengine_events", "Events handled, by type.", ["type"], registry=self.registry
        )
        self.handling = Histogram(
            "flowengine_event_handling_seconds",
            "Time from taking a session's lock to committing its new state.",
            buckets=buckets,
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
            buckets=buckets,
            registry=self.registry,
        )
        self.active_sessions = Gauge(
            "flowengine_active_sessions",
            "Sessions started by this instance that have not ended.",
            registry=self.registry,
        )
        self.errors = Counter("flowengine_errors", "Failures, by kind.", ["kind"], registry=self.registry)
        self.flows = Gauge("flowengine_flows_loaded", "Flows currently loaded.", registry=self.registry)

    def observe_rest(self, operation: str, status: str, seconds: float) -> None:
        self.rest.labels(operation=operation, status=status).inc()
        self.rest_latency.labels(operation=operation).observe(seconds)


def _without_created_times(text: bytes) -> str:
    return re.sub(r"^(\w+_created(?:\{[^}]*\})?) \S+$", r"\1 <time>", text.decode(), flags=re.MULTILINE)


class TestExposition:
    @pytest.mark.parametrize("observed", [pytest.param(False, id="nothing"), pytest.param(True, id="some")])
    def test_the_text_is_prometheus_clients_for_the_same_observations(self, observed: bool) -> None:
        metrics, reference = Metrics(), _Reference()
        if observed:
            _observe(metrics)
            _observe(reference)

        assert _without_created_times(metrics.render()) == _without_created_times(
            generate_latest(reference.registry)
        )

    def test_the_text_format_is_pinned(self) -> None:
        metrics = Metrics()
        metrics.handling.observe(0.0003)
        metrics.handling.observe(0.0001)
        metrics.handling.observe(20)
        metrics.observe_rest("createCall", "201", 0.0004)
        metrics.callbacks.labels(outcome="handled").inc()
        metrics.flows.set(3)

        lines = _without_created_times(metrics.render()).splitlines()

        handling = [line for line in lines if "flowengine_event_handling_seconds" in line]
        assert handling == [
            "# HELP flowengine_event_handling_seconds Time from taking a session's lock to committing its new state.",
            "# TYPE flowengine_event_handling_seconds histogram",
            *(
                f'flowengine_event_handling_seconds_bucket{{le="{le}"}} {count}'
                for le, count in zip(_LES, ["1.0", "1.0", "2.0", *["2.0"] * 13, "3.0"], strict=True)
            ),
            "flowengine_event_handling_seconds_count 3.0",
            "flowengine_event_handling_seconds_sum 20.0004",
            "# HELP flowengine_event_handling_seconds_created Time from taking a session's lock to committing its new state.",
            "# TYPE flowengine_event_handling_seconds_created gauge",
            "flowengine_event_handling_seconds_created <time>",
        ]
        assert 'flowengine_rest_request_seconds_bucket{le="0.0005",operation="createCall"} 1.0' in lines
        assert 'flowengine_rest_request_seconds_bucket{le="+Inf",operation="createCall"} 1.0' in lines
        assert 'flowengine_rest_request_seconds_count{operation="createCall"} 1.0' in lines
        assert 'flowengine_rest_request_seconds_sum{operation="createCall"} 0.0004' in lines
        assert 'flowengine_rest_request_seconds_created{operation="createCall"} <time>' in lines
        assert [line for line in lines if line.startswith("flowengine_rest_requests")] == [
            'flowengine_rest_requests_total{operation="createCall",status="201"} 1.0',
            'flowengine_rest_requests_created{operation="createCall",status="201"} <time>',
        ]
        assert [line for line in lines if "flowengine_callbacks" in line] == [
            "# HELP flowengine_callbacks_total Callbacks received, by outcome.",
            "# TYPE flowengine_callbacks_total counter",
            'flowengine_callbacks_total{outcome="handled"} 1.0',
            "# HELP flowengine_callbacks_created Callbacks received, by outcome.",
            "# TYPE flowengine_callbacks_created gauge",
            'flowengine_callbacks_created{outcome="handled"} <time>',
        ]
        assert [line for line in lines if "flowengine_flows_loaded" in line] == [
            "# HELP flowengine_flows_loaded Flows currently loaded.",
            "# TYPE flowengine_flows_loaded gauge",
            "flowengine_flows_loaded 3.0",
        ]

    def test_created_samples_follow_prometheus_clients_switch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(prometheus_client.metrics, "_use_created", False)
        metrics, reference = Metrics(), _Reference()
        _observe(metrics)
        _observe(reference)

        text = metrics.render()

        assert b"_created" not in text
        assert text == generate_latest(reference.registry)

    def test_a_value_is_read_back_by_sample_name_and_labels(self) -> None:
        metrics = Metrics()
        _observe(metrics)
        registry = metrics.registry

        assert registry.get_sample_value("flowengine_callbacks_total", {"outcome": "handled"}) == 2.0
        assert registry.get_sample_value("flowengine_errors_total", {"kind": "store"}) == 1.0
        assert registry.get_sample_value("flowengine_event_handling_seconds_count") == 4.0
        assert registry.get_sample_value("flowengine_event_handling_seconds_bucket", {"le": "0.00025"}) == 1.0
        assert (
            registry.get_sample_value(
                "flowengine_rest_requests_total", {"operation": "createCall", "status": "201"}
            )
            == 2.0
        )
        assert (
            registry.get_sample_value("flowengine_rest_request_seconds_sum", {"operation": "getCall"}) == 3.0
        )
        assert registry.get_sample_value("flowengine_active_sessions") == 3.0
        assert registry.get_sample_value("flowengine_flows_loaded") == 4.0

    def test_families_are_named_without_the_total_suffix(self) -> None:
        families = {family.name: family.type for family in Metrics().registry.collect()}

        assert families == {
            "flowengine_callbacks": "counter",
            "flowengine_events": "counter",
            "flowengine_event_handling_seconds": "histogram",
            "flowengine_rest_requests": "counter",
            "flowengine_rest_request_seconds": "histogram",
            "flowengine_active_sessions": "gauge",
            "flowengine_errors": "counter",
            "flowengine_flows_loaded": "gauge",
        }


class TestCounting:
    def test_an_observation_on_a_bucket_bound_counts_in_that_bucket(self) -> None:
        metrics = Metrics()
        metrics.handling.observe(0.001)
        metrics.handling.observe(10.5)

        def bucket(le: str) -> float | None:
            return metrics.registry.get_sample_value("flowengine_event_handling_seconds_bucket", {"le": le})

        assert (bucket("0.0005"), bucket("0.001"), bucket("10.0"), bucket("+Inf")) == (0.0, 1.0, 1.0, 2.0)

    def test_a_counter_refuses_a_negative_increment_and_keeps_its_value(self) -> None:
        metrics = Metrics()
        child = metrics.errors.labels(kind="store")
        child.inc()

        with pytest.raises(ValueError, match="non-negative"):
            child.inc(-1)

        assert metrics.registry.get_sample_value("flowengine_errors_total", {"kind": "store"}) == 1.0

    def test_a_gauge_goes_up_down_and_is_set(self) -> None:
        metrics = Metrics()
        metrics.active_sessions.inc()
        metrics.active_sessions.inc()
        metrics.active_sessions.dec()
        metrics.flows.set(2)
        metrics.flows.set(5)

        assert metrics.registry.get_sample_value("flowengine_active_sessions") == 1.0
        assert metrics.registry.get_sample_value("flowengine_flows_loaded") == 5.0


class TestLabels:
    def test_a_labelled_child_is_looked_up_once_and_counts(self) -> None:
        metrics = Metrics()

        first = metrics.callbacks.labels(outcome="handled")
        first.inc()
        metrics.callbacks.labels(outcome="handled").inc()
        metrics.callbacks.labels(outcome="started").inc()

        assert metrics.callbacks.labels(outcome="handled") is first
        assert metrics.callbacks.labels("handled") is first
        text = metrics.render().decode()
        assert 'flowengine_callbacks_total{outcome="handled"} 2.0' in text
        assert 'flowengine_callbacks_total{outcome="started"} 1.0' in text

    def test_two_labels_are_one_child_in_either_order_or_by_position(self) -> None:
        metrics = Metrics()

        child = metrics.rest.labels(operation="createCall", status="201")

        assert metrics.rest.labels(status="201", operation="createCall") is child
        assert metrics.rest.labels("createCall", "201") is child

    def test_a_wrong_label_name_is_still_refused_after_the_right_one_was_used(self) -> None:
        metrics = Metrics()
        metrics.errors.labels(kind="store").inc()

        with pytest.raises(ValueError, match="label"):
            metrics.errors.labels(outcome="store")

    @pytest.mark.parametrize(
        ("args", "kwargs", "match"),
        [
            pytest.param((), {}, "label count", id="none"),
            pytest.param(("createCall",), {}, "label count", id="too-few-by-position"),
            pytest.param((), {"operation": "createCall"}, "label names", id="too-few-by-name"),
            pytest.param(("createCall",), {"status": "201"}, "both", id="by-position-and-by-name"),
        ],
    )
    def test_label_values_that_do_not_fit_are_refused(
        self, args: tuple[str, ...], kwargs: dict[str, str], match: str
    ) -> None:
        metrics = Metrics()
        metrics.rest.labels(operation="createCall", status="201")

        with pytest.raises(ValueError, match=match):
            metrics.rest.labels(*args, **kwargs)

    def test_values_are_named_by_their_str_as_prometheus_client_names_them(self) -> None:
        class Kind(str):
            def __str__(self) -> str:
                return "kind-" + super().__str__()

        metrics = Metrics()
        metrics.errors.labels(kind="1").inc()
        metrics.errors.labels(kind=1).inc()
        metrics.errors.labels(kind=True).inc()
        metrics.errors.labels(kind=Kind("1")).inc()
        metrics.errors.labels(kind=Kind("1")).inc()

        text = metrics.render().decode()
        assert 'flowengine_errors_total{kind="1"} 2.0' in text
        assert 'flowengine_errors_total{kind="True"} 1.0' in text
        assert 'flowengine_errors_total{kind="kind-1"} 2.0' in text
