"""The memory store keeps a snapshot in its own size, whatever the object the runtime handed it.

orjson's ``dumps`` returns bytes that keep its whole write buffer (about 4 KB, whatever the length of the
JSON); kept as they are, 100,000 idle sessions took 959 MiB instead of about 270. Measured as the growth of
the resident set of a fresh interpreter (the margin is wide: about 1 KB per session against more than 4).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent(
    """
    import asyncio
    from flowengine.runtime.session import Session
    from flowengine.store.memory import MemoryStore

    def rss() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * 4096

    async def main() -> None:
        store = MemoryStore()
        lock = await store.acquire("warm-up", owner="t")
        before = rss()
        count = 20_000
        for index in range(count):
            session = Session(
                id=f"s-{index:032d}", flow="ivr-main-line", flow_hash="f" * 64, kind="voice",
                state="main_menu", vars={"company": "Acme Widgets", "sales_number": "+19195552001"},
                history=[f"{index}.000 greet: incoming call c-{index} from +15550001111"] * 3,
            )
            lock = await store.acquire(session.id, owner="t")
            await store.commit(lock, snapshot=session.to_bytes())
            await store.release(lock)
        print((rss() - before) / count)

    asyncio.run(main())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_committed_snapshot_costs_its_size_not_the_encoders_buffer() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    per_session = float(out.stdout.strip())
    assert per_session < 2500, f"{per_session:.0f} bytes of resident memory per stored session"
