"""Benchmark: 200 scenarios with timeouts in them (menu no-input retries, dial timeouts, survey reminders),
run in-process on the virtual clock exactly as ``flowengine test`` runs them.

Run from the repository root: ``python benchmarks/scenario_bench.py [COUNT]``. Prints the wall time, the
scenarios per second, and the virtual time simulated. Goal: 200 scenarios in under 10 seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from flowengine.testing.loader import read_scenario
from flowengine.testing.runner import run_scenario

ROOT = Path(__file__).resolve().parents[1]
# Each of these waits through timeouts: menu no-input reprompts, a dial that is never answered, a PIN
# gather that times out, survey reminders 10 minutes and an hour apart.
WITH_TIMEOUTS = [
    "ivr-noinput.yaml",
    "ivr-sales-no-answer.yaml",
    "conference-no-pin.yaml",
    "reminder-no-choice.yaml",
    "survey-timeouts.yaml",
    "survey-expired.yaml",
    "voicemail-pound.yaml",
    "forwarding-voicemail.yaml",
]


async def main(count: int) -> int:
    scenarios = [read_scenario(ROOT / "flows" / "scenarios" / name) for name in WITH_TIMEOUTS]
    started = time.perf_counter()
    virtual = 0.0
    failed = 0
    for index in range(count):
        result = await run_scenario(scenarios[index % len(scenarios)])
        virtual += result.virtual_seconds
        failed += not result.passed
    elapsed = time.perf_counter() - started
    print(f"{count} scenarios with timeouts in {elapsed:.2f} s ({count / elapsed:.0f} scenarios/s)")
    print(
        f"virtual time simulated: {virtual / 3600:.1f} h ({virtual / elapsed:.0f}x real time); failed: {failed}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
