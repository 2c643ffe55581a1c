"""``KnownSessions``: the sessions an instance committed last, bounded by count and bytes, oldest out first."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest

from flowengine.server.known import OBJECT_SIZE, KnownSessions


def _snapshot(size: int) -> bytes:
    return orjson.dumps({"pad": "x" * (size - 10)})  # {"pad":""} is 10 bytes around the padding


class TestLimits:
    def test_beyond_the_count_the_session_committed_longest_ago_is_forgotten(self) -> None:
        known = KnownSessions(limit=2, budget=10_000)
        for sid in ("a", "b", "c"):
            known.remember(sid, 1, _snapshot(100))

        assert (known.get("a"), len(known)) == (None, 2)
        assert known.get("b") is not None

    def test_beyond_the_budget_the_oldest_go_until_the_rest_fit(self) -> None:
        known = KnownSessions(limit=100, budget=250)
        for sid in ("a", "b", "c"):
            known.remember(sid, 1, _snapshot(100))

        assert [sid for sid in "abc" if known.get(sid)] == ["b", "c"]
        assert known.kept_bytes == 200

    def test_a_session_committed_again_becomes_the_newest(self) -> None:
        known = KnownSessions(limit=2, budget=10_000)
        known.remember("a", 1, _snapshot(100))
        known.remember("b", 1, _snapshot(100))
        known.remember("a", 2, _snapshot(120))
        known.remember("c", 1, _snapshot(100))

        assert known.get("b") is None
        assert known.get("a") == (2, _snapshot(120).decode(), 120)
        assert known.kept_bytes == 220

    def test_an_ended_session_is_kept_without_its_snapshot_and_counts_no_bytes(self) -> None:
        known = KnownSessions(limit=10, budget=10_000)
        known.remember("a", 1, _snapshot(100))
        known.remember("a", 2, None)

        assert known.get("a") == (2, None, 0)
        assert known.kept_bytes == 0

    def test_a_snapshot_handed_over_as_an_object_counts_a_fixed_size(self) -> None:
        known = KnownSessions(limit=10, budget=10_000)
        known.remember("a", 1, {"state": "menu"})

        assert known.get("a") == (1, {"state": "menu"}, OBJECT_SIZE)

    def test_forgetting_gives_back_the_bytes(self) -> None:
        known = KnownSessions(limit=10, budget=10_000)
        known.remember("a", 1, _snapshot(100))
        known.forget("a")
        known.forget("never-kept")

        assert (known.get("a"), known.kept_bytes, len(known)) == (None, 0, 0)


_PROBE = textwrap.dedent(
    """
    from flowengine.runtime.session import Session
    from flowengine.server.known import KnownSessions

    def rss() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * 4096

    known = KnownSessions(limit=1_000_000, budget=1 << 40)
    count = 20_000
    ids = [f"s-{index:032d}" for index in range(count)]
    before = rss()
    for index, sid in enumerate(ids):
        session = Session(
            id=sid, flow="ivr-main-line", flow_hash="f" * 64, kind="voice", state="main_menu",
            vars={"company": "Acme Widgets", "sales_number": "+19195552001"},
            history=[f"{index}.000 greet: incoming call c-{index} from +15550001111"] * 3,
        )
        known.remember(sid, 1, session.to_bytes())
    print((rss() - before) / count, known.kept_bytes / count)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_kept_snapshot_costs_its_size_not_the_encoders_buffer() -> None:
    """Measured as the growth of a fresh interpreter's resident set: about 1 KB per session here, against 4 KB
    and more when orjson's bytes were kept as they came."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    per_session, counted = (float(figure) for figure in out.stdout.split())
    assert per_session < 2 * counted + 300, (
        f"{per_session:.0f} bytes resident per {counted:.0f}-byte snapshot"
    )
