"""Raising the server's soft limit on open files (:mod:`flowengine.server.open_files`)."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from flowengine.server.open_files import CALLBACK_MARGIN, OpenFiles, raise_open_files_limit


@pytest.fixture
def limits() -> Iterator[tuple[int, int]]:
    """This process's limits, put back after the test (a soft limit may go down and up again freely)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_low_soft_limit_is_raised_to_the_hard_one(limits: tuple[int, int]) -> None:
    _, hard = limits
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard limit above 256")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    assert raise_open_files_limit() == OpenFiles(256, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_a_soft_limit_already_at_the_hard_one_is_left_alone(limits: tuple[int, int]) -> None:
    _, hard = limits
    if hard == resource.RLIM_INFINITY:
        pytest.skip("needs a finite hard limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    assert raise_open_files_limit() == OpenFiles(hard, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_a_refused_raise_keeps_the_limit_it_had(
    limits: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, hard = limits
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard limit above 256")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    def refuse(which: int, values: tuple[int, int]) -> None:
        raise ValueError("not allowed here")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_open_files_limit() == OpenFiles(256, 256)


@pytest.mark.parametrize(
    ("after", "outbound", "low"),
    [
        (1024, 500, False),
        (500 + CALLBACK_MARGIN, 500, False),
        (500 + CALLBACK_MARGIN - 1, 500, True),
        (None, 500, False),  # no limit at all
    ],
)
def test_too_low_leaves_room_for_callbacks_beside_the_outbound_connections(
    after: int | None, outbound: int, low: bool
) -> None:
    assert OpenFiles(after, after).too_low_for(outbound) is low
