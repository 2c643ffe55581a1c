"""The server's metrics: labelled children are remembered, and still counted and checked as before."""

from __future__ import annotations

import pytest

from flowengine.server.metrics import Metrics


def test_a_labelled_child_is_looked_up_once_and_counts() -> None:
    metrics = Metrics()

    first = metrics.callbacks.labels(outcome="handled")
    first.inc()
    metrics.callbacks.labels(outcome="handled").inc()
    metrics.callbacks.labels(outcome="started").inc()

    assert metrics.callbacks.labels(outcome="handled") is first
    text = metrics.render().decode()
    assert 'flowengine_callbacks_total{outcome="handled"} 2.0' in text
    assert 'flowengine_callbacks_total{outcome="started"} 1.0' in text


def test_a_wrong_label_name_is_still_refused_after_the_right_one_was_used() -> None:
    metrics = Metrics()
    metrics.errors.labels(kind="store").inc()

    with pytest.raises(ValueError, match="label"):
        metrics.errors.labels(outcome="store")
