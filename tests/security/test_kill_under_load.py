"""Issue 9 item 6, faults: ``flowengine serve`` killed with SIGKILL at random points under load, and the store
failing while a session's outbox is being executed. No call is left stuck, nothing is heard twice.

The kill test runs ``flowengine sim --virtual-clock`` and ``flowengine serve`` on one SQLite file as real
processes (the helpers of ``tests/store/serving.py``), drives concurrent calls of the hold flow (a menu, a
1-second timer, a goodbye) and kills ``serve`` at seeded random moments, restarting it each time on the same
file and port. The simulator, like the API, does not retry a callback that failed; the test re-sends the
failed deliveries once the server is back, as the API's retry or ``fallbackUrl`` would.

What a kill may legitimately repeat: the dispatcher executes a command, then marks it done. A kill between
the two (a window of one store write) re-runs that one command after the restart: commands run at least
once. The test accepts such a repeat only when it is exactly that (the last request before a kill issued
again as the first after it, nothing in between) and reports how many it saw; anything else repeated fails.

``FLOWENGINE_KILL_SEED``, ``FLOWENGINE_KILL_CALLS`` and ``FLOWENGINE_KILL_KILLS`` change the run for a longer
one by hand.

Found by this test: a process killed while holding a session's lock blocks that call until the lock expires
(30 s; callbacks meanwhile are answered 503 and re-sent), even though the restarted process has the same
``--instance-id``. The test allows for it; see the report on issue 9.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server.support import MakeHarness, dtmf, incoming
from store.serving import Phones, Process, hung_up, serve_process, sim_process

from flowengine.server.keys import STORE

HOLD_NUMBER = "+19195558002"
HOLD_CALL_HEARD = [
    "Welcome to the hold line.",
    "Press 1 to hold, or 2 to hang up.",
    "Please hold.",
    "Thank you for holding.",
    "Goodbye.",
]
SEED = int(os.environ.get("FLOWENGINE_KILL_SEED", "9006"))
CALLS = int(os.environ.get("FLOWENGINE_KILL_CALLS", "20"))
KILLS = int(os.environ.get("FLOWENGINE_KILL_KILLS", "3"))


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Process]:
    process = sim_process(tmp_path)
    process.start()
    try:
        await process.wait_for("/sim")
        yield process
    finally:
        process.stop()


class _Resender:
    """Re-sends callbacks the simulator failed to deliver, each once, in the order they were sent."""

    def __init__(self, http: aiohttp.ClientSession, phones: Phones) -> None:
        self.http = http
        self.phones = phones
        self.done: set[int] = set()
        self.answers: list[tuple[str, int, str]] = []

    async def resend(self) -> int:
        failed = sorted(await self.phones.callbacks(status="failed"), key=lambda d: int(d["id"]))
        count = 0
        for delivery in failed:
            if delivery["id"] in self.done:
                continue
            async with self.http.post(delivery["url"], json=delivery["event"]) as answer:
                text = await answer.text()
                if answer.status >= 300:  # the server is down again: leave it for the next round
                    return count
            self.done.add(delivery["id"])
            self.answers.append((str(delivery["eventType"]), answer.status, text))
            count += 1
        return count


def _rest(transcript: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [
        (index, entry["text"] + " " + json.dumps(entry.get("body"), sort_keys=True))
        for index, entry in enumerate(transcript)
        if entry["kind"] == "rest"
    ]


def _repeats(transcript: list[dict[str, Any]], boundaries: list[int]) -> tuple[list[str], list[str]]:
    """(repeats explained by a kill between executing and marking done, repeats that are not)."""
    requests = _rest(transcript)
    explained: list[str] = []
    wrong: list[str] = []
    for position, (index, request) in enumerate(requests):
        earlier = [r for _, r in requests[:position]]
        if request not in earlier:
            continue
        previous_index, previous = requests[position - 1] if position else (-1, "")
        across_kill = any(previous_index < boundary <= index for boundary in boundaries)
        if previous == request and across_kill:
            explained.append(request)
        else:
            wrong.append(request)
    return explained, wrong


def _heard_once(transcript: list[dict[str, Any]], boundaries: list[int]) -> list[str]:
    """What the caller heard, one repeat of a sentence across a kill counted once (see the module doc)."""
    heard: list[tuple[int, str]] = [(i, e["text"]) for i, e in enumerate(transcript) if e["kind"] == "heard"]
    result: list[str] = []
    last_index = -1
    for index, text in heard:
        if result and result[-1] == text and any(last_index < b <= index for b in boundaries):
            continue
        result.append(text)
        last_index = index
    return result


@pytest.mark.slow
async def test_serve_killed_at_random_points_under_load_leaves_no_call_stuck_and_nothing_heard_twice(
    tmp_path: Path, sim: Process
) -> None:
    rng = random.Random(SEED)
    serve = serve_process(tmp_path, sim, f"sqlite://{tmp_path}/state.db")
    serve.start()
    async with aiohttp.ClientSession() as http:
        phones = Phones(http, sim.url)
        resender = _Resender(http, phones)
        boundaries: dict[str, list[int]] = {}
        stop = asyncio.Event()
        try:
            await serve.wait_for("/readyz")
            await phones.provision(serve.url, [HOLD_NUMBER])
            calls: list[str] = []

            async def clock() -> None:
                while not stop.is_set():
                    await phones.advance(0.25)
                    await asyncio.sleep(0.03)

            async def phone(call: str) -> None:
                """Press 1 at each menu the flow offers, as a caller would."""
                pressed = 0
                while not stop.is_set():
                    transcript = await phones.transcript(call)
                    if any(e["kind"] == "call" and e["text"].startswith("hung up") for e in transcript):
                        return
                    gathers = sum(
                        1
                        for e in transcript
                        if e["kind"] == "rest" and e["text"].endswith("/gather") and e.get("status", 0) < 300
                    )
                    if gathers > pressed:
                        pressed = gathers
                        await phones.press(call, "1")
                    await asyncio.sleep(0.05)

            async def killer() -> int:
                kills = 0
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.15, 0.8))
                    serve.stop(signal.SIGKILL)
                    kills += 1
                    await asyncio.sleep(0.05)  # requests in flight when it died have landed or failed
                    for call in calls:
                        boundaries.setdefault(call, []).append(len(await phones.transcript(call)))
                    await asyncio.sleep(rng.uniform(0.0, 0.4))  # callbacks keep failing meanwhile
                    serve.start()  # same file, same port
                    await serve.wait_for("/readyz")
                    await resender.resend()
                return kills

            phoning: list[asyncio.Task[None]] = []

            async def dialler() -> None:
                """New calls keep coming, so that the kills land among callbacks and commands in flight."""
                for _ in range(CALLS):
                    call = await phones.call(HOLD_NUMBER)
                    calls.append(call)
                    phoning.append(asyncio.create_task(phone(call)))
                    await asyncio.sleep(dial_gaps.pop())

            dial_gaps = [rng.uniform(0.02, 0.15) for _ in range(CALLS)]
            ticking = asyncio.create_task(clock())
            dialling = asyncio.create_task(dialler())
            kills = await killer()
            await dialling

            # A call whose lock the killed process held waits for the lock's expiry (30 s) after the restart.
            deadline = time.monotonic() + 45
            while True:
                await resender.resend()
                done = await asyncio.gather(*(hung_up(phones, call) for call in calls))
                if all(done):
                    break
                if time.monotonic() > deadline:
                    stuck = [call for call, over in zip(calls, done, strict=True) if not over]
                    details = {call: await phones.transcript(call) for call in stuck[:2]}
                    raise AssertionError(
                        f"{len(stuck)} of {len(calls)} calls are stuck after {kills} kills: {stuck}\n"
                        f"{json.dumps(details, indent=1)[:6000]}\n{serve.output()[-4000:]}"
                    )
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(ticking, *phoning)

            repeated_across_kills = 0
            for call in calls:
                transcript = await phones.transcript(call)
                explained, wrong = _repeats(transcript, boundaries.get(call, []))
                repeated_across_kills += len(explained)
                assert not wrong, f"call {call}: REST requests issued twice: {wrong}"
                heard = _heard_once(transcript, boundaries.get(call, []))
                assert heard == HOLD_CALL_HEARD, f"call {call} heard {heard}"
            assert kills == KILLS
            assert all(status == 200 for _, status, _ in resender.answers), resender.answers
            print(
                f"seed {SEED}: {CALLS} calls, {kills} kills, {len(resender.answers)} callbacks re-sent, "
                f"{repeated_across_kills} commands re-run across a kill"
            )
            assert serve.stop() == 0, serve.output()[-4000:]
        finally:
            stop.set()
            serve.stop(signal.SIGKILL)


async def test_the_store_failing_while_an_outbox_runs_leaves_it_pending_and_the_sweep_finishes_it(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    h.api.delay["/calls/c-o/audio"] = 0.3  # the second command of the call's first outbox
    answer = await h.post(incoming("c-o"))
    assert (await answer.json())["status"] == "started"
    await h.settle(lambda: len(h.api.seen) == 2)  # the audio request is in the API's hands
    h.backend.available = False  # so marking it done fails, mid-outbox
    await asyncio.sleep(0.5)
    h.backend.available = True
    store = h.app[STORE]
    [pending] = await store.pending_outboxes()
    assert pending.session_id == "s-c-o"
    assert [entry.command["path"] for entry in pending.entries][-1].endswith("/calls/c-o/audio")

    del h.api.delay["/calls/c-o/audio"]
    # Nothing to do by hand: the lock whose release failed is given back, and the outbox resumed, as soon
    # as the store answers (the periodic sweep, every 30 s, is not needed and the lock's 30 s expiry neither).
    deadline = time.monotonic() + 5
    while await store.pending_outboxes():
        assert time.monotonic() < deadline, "the outbox left pending by the store failure was not resumed"
        await asyncio.sleep(0.02)
    # the audio request was in the API's hands when the store failed, so it is sent again (at least once)
    assert h.api.paths().count("POST /calls/c-o/audio") == 2
    again = await h.post(dtmf("c-o", "9"))  # and the call goes on
    assert (await again.json())["status"] == "handled"
    record = await store.load("s-c-o")
    assert record is not None
    assert record.snapshot["seen"] == ["dtmf:9"]
    assert not record.outbox
