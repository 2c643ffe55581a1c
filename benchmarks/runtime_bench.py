"""Benchmark of the runtime core: events per second through ``Engine.handle`` and bytes per idle session.

Run from the repository root: ``python benchmarks/runtime_bench.py [--calls N] [--sessions 10000,100000]``.

- Throughput: rounds of N complete IVR calls of ``flows/ivr.yaml`` (greeting, a no-input retry, a wrong key, the
  sales choice, a dialled agent who answers and is bridged, then both hang up), on one core. Events are
  typed events built beforehand in the API's shapes; the figure counts only the time inside
  ``Engine.start``/``Engine.handle``; the best round is the figure (other processes share the machine), the
  median is printed beside it. Goal: at least 50,000 events per second.
- Memory: sessions left idle in the IVR's menu (answered, greeted, a gather in progress), measured with
  tracemalloc as the growth of traced memory divided by the number of sessions. Goal: at most 2 KB each.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from pathlib import Path

from flowengine.catapult.events import (
    AnswerEvent,
    CallbackEvent,
    GatherEvent,
    HangupEvent,
    IncomingCallEvent,
    SpeakEvent,
)
from flowengine.flow import model
from flowengine.flow.pipeline import read_flow
from flowengine.runtime import commands as cmd
from flowengine.runtime.engine import Engine
from flowengine.runtime.events import CommandResult
from flowengine.runtime.session import Session

ROOT = Path(__file__).resolve().parents[1]


def _engine() -> tuple[Engine, model.Flow]:
    flow = read_flow(ROOT / "flows" / "ivr.yaml")
    counter = iter(range(10**9))

    def new_id() -> str:
        # As long as the default random ids ("s-" and 32 hex digits), but cheap and repeatable.
        return f"s-{next(counter):032x}"

    engine = Engine({flow.name: flow}, callback_url="https://engine.test/cb", new_id=new_id)
    return engine, flow


def _incoming(flow: model.Flow, n: int) -> IncomingCallEvent:
    return IncomingCallEvent(
        event_type="incomingcall",
        call_id=f"c-{n:024x}",
        from_=f"+1555{n % 10_000_000:07d}",
        to=flow.numbers[0],
        call_state="active",
    )


def _done(session: Session, call_id: str) -> SpeakEvent:
    tag = (session.busy or {}).get(model.CALLER)
    return SpeakEvent(event_type="speak", call_id=call_id, status="done", tag=tag)


def _gather(session: Session, call_id: str, digits: str) -> GatherEvent:
    tag = session.gather_tag(model.CALLER)
    reason = "max-digits" if digits else "inter-digit-timeout"
    return GatherEvent(event_type="gather", call_id=call_id, digits=digits, reason=reason, tag=tag)


def throughput(calls: int) -> tuple[int, float]:
    """Run ``calls`` IVR calls; return (events handled, seconds inside the engine)."""
    engine, flow = _engine()
    handled = 0
    spent = 0.0
    clock = time.perf_counter
    for n in range(calls):
        now = float(n)
        call_id = f"c-{n:024x}"
        start = clock()
        started = engine.start(_incoming(flow, n), now)
        spent += clock() - start
        assert started is not None
        session, _ = started
        handled += 1

        def send(event: object, session: Session = session, now: float = now) -> list[cmd.Command]:
            nonlocal spent, handled
            begin = clock()
            out = engine.handle(session, event, now)
            spent += clock() - begin
            handled += 1
            return out

        send(_done(session, call_id))  # greeting done -> menu
        send(_gather(session, call_id, ""))  # noinput -> reprompt
        send(_done(session, call_id))  # reprompt done -> gather again
        send(_gather(session, call_id, "7"))  # nomatch -> reprompt
        send(_done(session, call_id))
        send(_gather(session, call_id, "1"))  # sales
        out = send(_done(session, call_id))  # "connecting" done -> dial
        dial = next(c for c in out if isinstance(c, cmd.CreateCall))
        send(CommandResult(dial.command_id, f"a-{n}"))
        send(AnswerEvent(event_type="answer", call_id=f"a-{n}", tag=dial.tag))
        send(HangupEvent(event_type="hangup", call_id=f"a-{n}", cause="NORMAL_CLEARING", tag=dial.tag))
        send(_done(session, call_id))  # goodbye said -> hang up
        assert session.ended, session.history
    return handled, spent


def idle_bytes(count: int) -> float:
    """Bytes of traced memory per session left waiting in the IVR menu."""
    engine, flow = _engine()
    events: list[CallbackEvent] = []
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sessions: list[Session] = []
    for n in range(count):
        started = engine.start(_incoming(flow, n), 0.0)
        assert started is not None
        session, _ = started
        engine.handle(session, _done(session, f"c-{n:024x}"), 1.0)
        assert session.gather_tag(model.CALLER), "the session should be waiting in the menu"
        sessions.append(session)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del events
    return (after - before) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="IVR calls per throughput round")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds (the best is the figure)")
    parser.add_argument("--sessions", default="10000,100000", help="comma-separated idle session counts")
    args = parser.parse_args()
    rates = []
    for _ in range(max(1, args.rounds)):
        handled, spent = throughput(args.calls)
        rates.append(handled / spent)
    rates.sort()
    print(
        f"throughput: {handled} events per round, best of {len(rates)} rounds {rates[-1]:,.0f} events/s "
        f"(median {rates[len(rates) // 2]:,.0f}) inside the engine, one core"
    )
    for count in (int(part) for part in args.sessions.split(",") if part):
        per = idle_bytes(count)
        print(f"idle sessions: {count:,} -> {per:,.0f} bytes per session (tracemalloc)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
